// Preselect the browser's time zone on the subscribe form (the server falls back to UTC).
(function () {
  var select = document.getElementById("timezone");
  if (!select || select.dataset.keep === "1") return;
  var zone = "";
  try { zone = Intl.DateTimeFormat().resolvedOptions().timeZone || ""; } catch (e) { return; }
  for (var i = 0; i < select.options.length; i++) {
    if (select.options[i].value === zone) { select.value = zone; break; }
  }
})();
