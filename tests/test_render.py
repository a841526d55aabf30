"""render.py and tokens.py: the email and Slack forms of a digest, and the signed links in them."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from _digests import NASTY, SLOT, digest, entry, subscriber
from click.testing import CliRunner

from bot import tokens
from bot.channels.email import build_message, message_bytes, message_id
from bot.cli import cli as cli_main
from bot.config import Settings
from bot.models import Digest, DigestItem, Interests
from bot.render import MAX_HTML, render_email, render_slack, slack_messages

SETTINGS = Settings(
    base_url="https://digest.example.org",
    from_addr="Paper Digest <digest@example.org>",
    secret_key="test-secret",
)


def parse(d: Digest, settings: Settings = SETTINGS) -> EmailMessage:
    msg = message_from_bytes(message_bytes(build_message(d, settings)), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


class Tags(HTMLParser):
    """Collects tags, links and text of an HTML document."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.links: list[tuple[str, str]] = []
        self.text: list[str] = []
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "a":
            self._href = dict(attrs).get("href") or ""
            self.links.append((self._href, ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._href is not None:
            href, label = self.links[-1]
            self.links[-1] = (href, label + data)


def html_of(msg: EmailMessage) -> Tags:
    part = msg.get_body(("html",))
    assert part is not None
    t = Tags()
    t.feed(part.get_content())
    return t


# --- email -----------------------------------------------------------------------------------------


def test_email_is_multipart_alternative_text_first_html_last() -> None:
    msg = parse(digest(3))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    text, html = parts[0].get_content(), parts[1].get_content()
    for i in range(3):  # the same digest in both
        title = entry(i).title
        assert title in text and title in html


def test_email_headers() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    raw = message_bytes(build_message(digest(3), SETTINGS))
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "3 new papers on efficient inference, Mon 02 Mar 2026"
    assert msg["From"] == "Paper Digest <digest@example.org>"
    assert msg["To"] == "Zoë Ålice Exämple <alice@example.org>"
    assert (
        msg["Message-ID"] == "<alice.20260302T0700Z@example.org>" == message_id(digest(3), SETTINGS)
    )
    assert parsedate_to_datetime(msg["Date"]) >= before
    assert msg["List-Id"] == "digestbot digest <alice.digestbot.example.org>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsub = re.fullmatch(
        r"<https://digest\.example\.org/unsubscribe/([\w.-]+)>", msg["List-Unsubscribe"]
    )
    assert unsub, msg["List-Unsubscribe"]
    assert tokens.verify(SETTINGS, unsub.group(1), "unsubscribe")["subscriber_id"] == "alice"
    # Non-ASCII names and the subject are RFC 2047 encoded words on the wire; every line is ASCII.
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert (
        "To: =?utf-8?b?" in head
        and "Subject: 3 new papers on efficient inference, Mon 02 Mar 2026\r\n" in head
    )
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_non_ascii_subject_is_encoded_and_folded() -> None:
    d = digest(1, titles=["Über-schnelle Quantisierung für große Sprachmodelle — ein Überblick"])
    d = Digest(d.id, d.subscriber, d.slot, (replace(d.items[0], topic=""),))
    raw = message_bytes(build_message(d, SETTINGS))
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert head.startswith("Subject: =?utf-8?b?") and "\r\n =?utf-8?b?" in head
    assert all(
        len(line) <= 78 for line in head.split("\r\n") if not line.startswith("List-Unsubscribe:")
    )
    msg = message_from_bytes(raw, policy=policy.default)
    assert (
        msg["Subject"]
        == "1 new paper: Über-schnelle Quantisierung für große Sprachmodelle — ein…, Mon 02 Mar 2026"
    )


def test_each_item_has_title_link_authors_source_topic_abstract_why_and_feedback() -> None:
    d = digest(3)
    msg = parse(d)
    t = html_of(msg)
    text = " ".join(t.text)
    e = entry(1)
    assert (e.url, e.title) in t.links
    assert "Zoë Müller, Song Han, Ana Pérez" in text
    assert "hf_daily · efficient inference" in text
    assert "We study post-training quantization" in text
    assert "Why: keyword: quantization; terms: low-bit, vision" in text
    votes = [(h, label) for h, label in t.links if "/feedback/" in h]
    assert len(votes) == 6
    href = next(h for h, label in votes if label == "👎 less like this")
    m = re.fullmatch(r"https://digest\.example\.org/feedback/([\w.-]+)/(up|down)", href)
    assert m and m.group(2) == "down"
    payload = tokens.verify(SETTINGS, m.group(1), "feedback")
    assert payload["entry_id"] == entry(0).id and payload["digest_id"] == d.id
    plain = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert f"👎 less like this: {href}" in plain


def test_html_is_self_contained_dark_mode_ready_and_phone_sized() -> None:
    html = render_email(digest(5), SETTINGS).html
    t = Tags()
    t.feed(html)
    assert "img" not in t.tags and "script" not in t.tags
    assert '<meta name="color-scheme" content="light dark">' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert 'name="viewport"' in html and "max-width:640px" in html
    assert "http://" not in html.replace("http://www.w3.org", "")  # nothing remote to load
    # Dark mode: every element with an inline text colour has a class the dark-mode block recolours.
    long_html = render_email(digest(200, more=2), SETTINGS).html
    styled = re.findall(r'<(\w+)(?: class="(\w+)")? style="[^"]*(?<![-\w])color:#', long_html)
    assert styled and all(cls in ("page", "text", "muted", "title", "link") for _, cls in styled), (
        styled
    )
    for cls in ("page", "text", "muted", "title", "link"):
        assert re.search(rf"\.{cls}\b[^{{]*{{[^}}]*color: #[0-9a-f]{{6}} !important", html), cls


def test_titles_with_markup_are_inert_text_in_email_and_slack() -> None:
    d = digest(3, titles=NASTY)
    msg = parse(d)
    t = html_of(msg)
    assert not {"script", "b", "i"} & set(t.tags)
    labels = [label for _, label in t.links]
    assert NASTY[0] in labels and NASTY[1] in labels  # shown as the literal text
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; Attention &amp; Friends" in html
    sections = [
        b["text"]["text"]
        for m in slack_messages(d, SETTINGS)
        for b in m["blocks"]
        if b["type"] == "section"
    ]
    assert sections[0].startswith(
        "*<https://arxiv.org/abs/2603.00000|&lt;script&gt;alert('x')&lt;/script&gt; Attention &amp; Friends>*"
    )
    assert "Fast &amp; &lt;b&gt;Bold&lt;/b&gt; Quantization" in sections[1]
    assert not any(
        re.search(r"<(?!https://)", s) for s in sections
    )  # the only < opens our own links


def test_a_javascript_url_is_not_linked() -> None:
    bad = DigestItem(entry(0).__class__(id="x:1", title="Trap", url="javascript:alert(1)"), 0.5)
    d = Digest("alice.x", subscriber(), SLOT, (bad,))
    t = html_of(parse(d))
    assert not any(h.startswith("javascript") for h, _ in t.links)
    assert "<javascript" not in json.dumps(render_slack(d, SETTINGS))


def test_a_long_digest_stays_under_100_kb_and_loses_no_item() -> None:
    d = digest(200, more=40)
    r = render_email(d, SETTINGS)
    assert len(r.html.encode()) <= MAX_HTML
    assert len(render_email(digest(20), SETTINGS).html.encode()) < MAX_HTML // 2
    m = re.search(r"(\d+) more in this digest:", r.html)
    assert m and 0 < int(m.group(1)) < 200
    assert f"{m.group(1)} more in this digest:" in r.text  # the text part is the same digest
    for i in range(200):
        assert entry(i).title in r.html and entry(i).title in r.text
    assert "…and 40 more matched your interests" in r.html


def test_templates_dir_overrides_a_bundled_template(tmp_path: Path) -> None:
    (tmp_path / "email.txt.j2").write_text(
        "Hello {{ name }}: {{ count }} papers\n", encoding="utf-8"
    )

    r = render_email(digest(2), replace(SETTINGS, templates_dir=tmp_path))
    assert r.text == "Hello Zoë Ålice Exämple: 2 papers"
    assert "<!DOCTYPE html>" in r.html  # the rest still bundled


def test_a_template_written_for_digest_items_still_renders(tmp_path: Path) -> None:
    (tmp_path / "email.txt.j2").write_text(
        "{{ date_text }} {{ date.year }} {{ base_url }}\n{% for item in items %}"
        "{{ item.entry.title }} ({{ item.score }}): {{ item.why | join('; ') }} [{{ item.topic }}]\n{% endfor %}",
        encoding="utf-8",
    )
    r = render_email(digest(1), replace(SETTINGS, templates_dir=tmp_path))
    assert r.text == (
        "Mon 02 Mar 2026 2026 https://digest.example.org\n"
        "Low-bit quantization of vision transformers, part 0 (0.9): keyword: quantization; terms: low-bit, vision [vision]\n"
    )


# --- Slack -------------------------------------------------------------------------------------


def check_slack_limits(message: dict[str, object]) -> None:
    """Slack's limits: ≤ 50 blocks, section text ≤ 3000, header ≤ 150, about 12,000 in all."""
    blocks = message["blocks"]
    assert isinstance(blocks, list) and 0 < len(blocks) <= 50
    total = 0
    for b in blocks:
        if b["type"] == "header":
            assert len(b["text"]["text"]) <= 150
            total += len(b["text"]["text"])
        elif b["type"] == "section":
            assert len(b["text"]["text"]) <= 3000
            total += len(b["text"]["text"])
        elif b["type"] == "context":
            total += sum(len(e["text"]) for e in b["elements"])
        elif b["type"] == "actions":
            for e in b["elements"]:
                assert len(e["action_id"]) <= 255
                total += len(e["text"]["text"])
    assert total <= 12_000
    assert isinstance(message["text"], str) and 0 < len(message["text"]) <= 4000


def test_slack_message_has_header_sections_buttons_context_and_fallback() -> None:
    d = digest(2)
    (m,) = slack_messages(d, SETTINGS)
    check_slack_limits(m)
    assert m["text"] == "2 new papers on vision, Mon 02 Mar 2026"  # a tie: the first item's topic
    assert [b["type"] for b in m["blocks"]] == [
        "header",
        "section",
        "context",
        "actions",
        "section",
        "context",
        "actions",
    ]
    assert m["blocks"][2]["elements"][0]["text"] == "hf_daily · vision"
    up, down = m["blocks"][3]["elements"]
    assert up["action_id"] == f"digestbot_up:{d.id}:{entry(0).id}"
    assert down["action_id"] == f"digestbot_down:{d.id}:{entry(0).id}"
    assert up["url"].startswith("https://digest.example.org/feedback/") and up["url"].endswith(
        "/up"
    )
    assert "_Why: keyword: quantization; terms: low-bit, vision_" in m["blocks"][1]["text"]["text"]


def test_a_200_item_digest_splits_into_messages_within_limits() -> None:
    d = digest(200, more=5)
    messages = slack_messages(d, SETTINGS)
    assert len(messages) == 13  # 16 items (48 blocks) a message, the first with the header
    for m in messages:
        check_slack_limits(m)
    assert messages[0]["blocks"][0]["type"] == "header"
    assert all(m["blocks"][0]["type"] != "header" for m in messages[1:])
    seen = [
        a["action_id"].split(":", 2)[2]
        for m in messages
        for b in m["blocks"]
        if b["type"] == "actions"
        for a in b["elements"]
        if a["action_id"].startswith("digestbot_up")
    ]
    assert seen == [entry(i).id for i in range(200)]
    assert "…and 5 more matched" in messages[-1]["blocks"][-1]["elements"][0]["text"]
    assert messages[1]["text"].endswith("(part 2 of 13)")


def test_huge_item_text_is_cut_to_slack_limits_without_breaking_escapes() -> None:
    long_title = "R&D <x> " * 600
    d = digest(1, titles=[long_title])
    d = Digest(
        d.id,
        d.subscriber,
        d.slot,
        (DigestItem(entry(0, long_title, "a&b " * 2000), 1.0, ("w&y " * 400,)),),
    )
    (m,) = slack_messages(d, SETTINGS)
    check_slack_limits(m)
    text = m["blocks"][1]["text"]["text"]
    assert not re.search(r"&(?!amp;|lt;|gt;)", text)


# --- tokens ------------------------------------------------------------------------------------


def test_tokens_round_trip_and_refuse_forgery_kind_and_age() -> None:
    t = tokens.sign(SETTINGS, "feedback", "alice", entry_id="arxiv:1", digest_id="d1", now=1000)
    assert tokens.verify(SETTINGS, t, "feedback", now=1500) == {
        "kind": "feedback",
        "subscriber_id": "alice",
        "entry_id": "arxiv:1",
        "digest_id": "d1",
        "issued": 1000,
    }
    with pytest.raises(tokens.TokenError, match="not made by this digestbot"):
        tokens.verify(Settings(secret_key="other"), t, "feedback")
    body, mac = t.split(".")
    forged = tokens._b64(json.dumps({"k": "feedback", "s": "bob", "t": 1000}).encode())
    with pytest.raises(tokens.TokenError, match="not made by this digestbot"):
        tokens.verify(SETTINGS, f"{forged}.{mac}", "feedback")
    with pytest.raises(tokens.TokenError, match="for 'feedback', not 'unsubscribe'"):
        tokens.verify(SETTINGS, t, "unsubscribe")
    with pytest.raises(tokens.TokenError, match="expired"):
        tokens.verify(SETTINGS, t, "feedback", max_age=60, now=2000)
    with pytest.raises(tokens.TokenError, match="incomplete"):
        tokens.verify(SETTINGS, body, "feedback")


def test_tokens_without_a_secret_key_warn(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="bot.tokens"):
        t = tokens.sign(Settings(), "manage", "alice")
        tokens.sign(Settings(), "manage", "bob")
    assert [r.message for r in caplog.records].count(
        "DIGESTBOT_SECRET_KEY is not set: links are signed with a public development key; set it in production"
    ) == 1
    assert tokens.verify(Settings(), t, "manage")["subscriber_id"] == "alice"


# --- SpamAssassin --------------------------------------------------------------------------------


@pytest.mark.slow
def test_spamassassin_scores_a_sample_digest_low(tmp_path: Path) -> None:
    if shutil.which("spamassassin") is None:
        pytest.skip(
            "spamassassin is not installed (Debian package 'spamassassin'; .ci/run installs it)"
        )
    raw = message_bytes(build_message(digest(8), SETTINGS))
    env = {**os.environ, "HOME": str(tmp_path)}  # SA writes user prefs under $HOME
    out = subprocess.run(
        ["spamassassin", "-L", "-t"],
        input=raw,
        capture_output=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    status = message_from_bytes(out, policy=policy.default)["X-Spam-Status"]
    m = re.search(r"score=(-?[\d.]+)", status)
    assert m, status
    assert float(m.group(1)) <= 1.0, status
    rules = set(re.findall(r"[A-Z][A-Z0-9_]+", status.split("tests=", 1)[1]))
    bad = {
        "MIME_HTML_ONLY",
        "MPART_ALT_DIFF",
        "MISSING_DATE",
        "MISSING_MID",
        "INVALID_DATE",
        "HTML_FONT_LOW_CONTRAST",
    }
    assert not rules & bad, status
    assert not any(r.startswith("HTML_IMAGE_RATIO") for r in rules), status


# --- preview ---------------------------------------------------------------------------------------


def test_preview_writes_the_next_digest_and_records_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.store import Store

    monkeypatch.chdir(tmp_path)
    db = tmp_path / "d.db"
    store = Store(f"sqlite:///{db}")
    now = datetime.now(UTC)
    store.upsert_entries(  # published within lookback_days: what a digest offers
        [
            replace(entry(i, f"Quantization of transformers, idea {i}"), published=now)
            for i in range(4)
        ],
        now=now - timedelta(hours=1),
    )
    store.close()
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "alice.toml").write_text(
        'name = "Alice"\nemail = "alice@example.org"\nschedule = "0 8 * * *"\ntimezone = "UTC"\nmax_items = 3\n'
        '[interests]\ndescription = "quantization of transformers"\nkeywords = ["quantization"]\n',
        encoding="utf-8",
    )
    before = db.read_bytes()
    env = {"DIGESTBOT_DATABASE_URL": f"sqlite:///{db}", "DIGESTBOT_SECRET_KEY": "k"}
    result = CliRunner().invoke(
        cli_main,
        ["preview", "alice", "--subscriptions", str(subs), "--out", "out"],
        env=env,
        catch_exceptions=False,
        standalone_mode=False,
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(r"alice: next digest alice\.\d{8}T0800Z with 3 entries", lines[0])
    files = sorted(p.suffix for p in (tmp_path / "out").iterdir())
    assert files == [".html", ".json", ".txt"]
    html = next((tmp_path / "out").glob("*.html")).read_text(encoding="utf-8")
    assert "3 new papers for Alice" in html
    assert (
        json.loads(next((tmp_path / "out").glob("*.json")).read_text())["messages"][0]["blocks"][0][
            "type"
        ]
        == "header"
    )
    store = Store(f"sqlite:///{db}")
    assert store.history("alice") == [] and store.delivered(["alice"]) == {"alice": set()}
    store.close()
    assert len(before) > 0


def test_preview_needs_a_database_and_names_an_unknown_subscriber(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.store import Store

    monkeypatch.chdir(tmp_path)
    (tmp_path / "subs").mkdir()
    (tmp_path / "digestbot.toml").write_text("")  # a command with a database needs a config
    result = CliRunner().invoke(cli_main, ["preview", "zed", "--subscriptions", "subs"])
    assert (result.exit_code, result.output) == (
        1,
        (
            "Error: no database at sqlite:///digestbot.db yet; run 'digestbot run --once' first to "
            "fetch entries\n"
        ),
    )
    Store("sqlite:///digestbot.db").close()
    result = CliRunner().invoke(cli_main, ["preview", "zed", "--subscriptions", "subs"])
    assert (result.exit_code, result.output) == (
        1,
        (
            "Error: no subscriber 'zed'; the subscribers are: none (a file subscriber's id is its "
            "file name without .toml; 'digestbot status' lists them all)\n"
        ),
    )


def test_links_to_this_machine_need_no_secret_key_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "_warned", False)
    local = Settings(base_url="http://localhost:8000")
    with caplog.at_level(logging.WARNING, logger="bot.tokens"):
        html = render_email(digest(1), local).html
    assert caplog.records == []
    token = re.search(r"http://localhost:8000/manage/([\w.-]+)", html).group(1)  # type: ignore[union-attr]
    assert (
        tokens.verify(Settings(), token, "manage")["subscriber_id"] == "alice"
    )  # the web app, also keyless
    with caplog.at_level(logging.WARNING, logger="bot.tokens"):
        render_email(digest(1), Settings(base_url="https://digest.example.org"))
    assert len(caplog.records) == 1


# --- a feed's very long links: not shown, and the email keeps its size ---------------------------


def with_urls(urls: list[str]) -> Digest:
    items = tuple(
        DigestItem(replace(entry(i, f"Paper number {i}"), id=f"x:{i}", url=u), 1.0)
        for i, u in enumerate(urls)
    )
    return Digest("alice.x", subscriber(), SLOT, items)


def test_a_feeds_90000_character_links_are_not_shown_and_the_email_stays_under_100_kb() -> None:
    """The reviewer's case: three <link>s of 90,000 characters made a 272 KB HTML part."""
    from bot.sources._base import clean_entries
    from bot.sources.feeds import parse_feed

    long = "https://blog.example.org/post?ref=" + "a" * 90_000
    xml = "".join(
        f"<item><title>Post {c}</title><link>{long}{c}</link><guid>post-{c}</guid></item>"
        for c in "abc"
    )
    feed = f'<?xml version="1.0"?><rss version="2.0"><channel><title>B</title>{xml}</channel></rss>'
    entries, _ = parse_feed(feed.encode(), "https://blog.example.org/feed.xml")
    (e, *_) = entries = clean_entries(entries)
    assert len(e.url) > 90_000  # kept as the feed gave it: the cap is where it is shown
    d = Digest("alice.x", subscriber(), SLOT, tuple(DigestItem(e, 1.0) for e in entries))
    r = render_email(d, SETTINGS)
    assert len(r.html.encode()) < 10_000 and len(r.text) < 10_000
    t = html_of(parse(d))
    assert [c for c in "abc" if f"Post {c}" in t.text] == ["a", "b", "c"]  # each keeps its title
    assert not any("/post?ref=" in h for h, _ in t.links)
    assert "/post?ref=" not in r.text
    assert "/post?ref=" not in json.dumps(render_slack(d, SETTINGS))


def test_a_link_of_2000_characters_is_shown_and_one_longer_is_not() -> None:
    from bot.items import MAX_URL, safe_url

    ok = "https://example.org/p?q=" + "a" * (MAX_URL - 24)
    assert len(ok) == MAX_URL and safe_url(ok) == ok
    assert safe_url(ok + "a") == ""
    assert safe_url("https://example.org/ü" + "a" * (MAX_URL - 25)) == ""  # %C3%BC on the wire
    assert safe_url("http://[abc/x") == ""  # no URL at all: empty, not an error
    normal = "https://arxiv.org/abs/2603.00001"
    t = html_of(parse(with_urls([ok, normal])))
    assert (ok, "Paper number 0") in t.links and (normal, "Paper number 1") in t.links
    assert ok in render_email(with_urls([ok]), SETTINGS).text
    assert f"<{ok}|Paper number 0>" in json.dumps(render_slack(with_urls([ok]), SETTINGS))


def test_when_even_titles_with_their_links_pass_100_kb_the_links_go() -> None:
    """Links each within the cap, but 80 of them: the brief list alone would be 160 KB."""
    urls = [f"https://example.org/{i}?q=" + "a" * 1_970 for i in range(80)]
    r = render_email(with_urls(urls), SETTINGS)
    assert len(r.html.encode()) <= MAX_HTML
    assert "80 more in this digest:" in r.html and "80 more in this digest:" in r.text
    assert all(f"Paper number {i}" in r.html and f"Paper number {i}" in r.text for i in range(80))
    assert "example.org/0?q=" not in r.html and "example.org/0?q=" not in r.text
    few = render_email(with_urls(urls[:10]), SETTINGS)  # fits: its links stay
    assert all(u in few.html for u in urls[:10])


# --- what subscribers receive: the reviewer's cases (notes/bugs-out.md) ----------------------------


def defects(msg: EmailMessage) -> list[object]:
    """Every defect the stdlib parser found, in each part and each of its headers."""
    found: list[object] = []
    for part in msg.walk():
        found += list(part.defects)
        for name in part:
            found += list(getattr(part[name], "defects", ()))
    return found


def long_item(url: str, title: str = "Paper with a long link") -> Digest:
    e = replace(entry(0, title), id="x:long", url=url, extra={"hf_url": url[:1000]})
    why = ("keyword: quantization " * 14).strip()  # ~300 characters
    return Digest("alice.x", subscriber(), SLOT, (DigestItem(e, 1.0, (why,)),))


@pytest.mark.parametrize(
    "url",
    [
        # a link of 1,992 characters (allowed) with query parameters: was cut to "*…"
        "https://blog.example.org/p?utm_source=rss&utm_medium=feed&ref="
        + "a" * (1992 - 62)
        + "&b=1",
        # characters slack_url percent-encodes (1 each toward MAX_URL, 3 in the link)
        "https://example.org/p?q=" + '"{|}' * 490,
    ],
)
def test_a_slack_item_past_3000_characters_keeps_its_title_and_why(url: str) -> None:
    from bot.items import safe_url

    assert safe_url(url) == url
    d = long_item(url)
    (m,) = slack_messages(d, SETTINGS)
    check_slack_limits(m)
    text = m["blocks"][1]["text"]["text"]
    assert "Paper with a long link" in text.split("\n")[0]
    assert "Zoë Müller" in text and "We study post-training quantization" in text
    assert "Why: keyword: quantization" in text
    assert not re.search(r"&(?!amp;|lt;|gt;)[a-z]{0,3}…", text)  # no half entity before the cut
    assert text.count("<") == text.count(">")  # no link cut in two


def test_an_encoded_word_in_a_title_reaches_the_subject_as_the_text_it_is() -> None:
    trap = "=?utf-8?b?4oCuRkRQLmV4ZQ0KQmNjOiB4?="  # decodes to '\u202eFDP.exe\r\nBcc: x'
    d = digest(1, titles=[trap])
    d = Digest(d.id, d.subscriber, d.slot, (replace(d.items[0], topic=""),))
    raw = message_bytes(build_message(d, SETTINGS))
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert trap not in head
    msg = message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == f"1 new paper: {trap}, Mon 02 Mar 2026"
    assert "\u202e" not in msg["Subject"] and msg["Bcc"] is None
    assert not defects(msg)
    named = replace(subscriber(), name=trap)  # a name too: encoded, read back as written
    msg = message_from_bytes(
        message_bytes(build_message(digest(1, sub=named), SETTINGS)), policy=policy.default
    )
    assert msg["To"].addresses[0].display_name == trap


def test_long_ascii_headers_are_folded_within_78_characters() -> None:
    """A 1,200-character name made a To: line of 1,224 bytes; a 1,300-character topic a
    1,320-byte Subject (RFC 5322 §2.1.1: 998 at most, 78 should)."""
    name = " ".join(["Alice"] * 200)
    topic = "-".join(["efficient"] * 130)
    d = digest(2, sub=replace(subscriber(), name=name))
    d = Digest(d.id, d.subscriber, d.slot, tuple(replace(i, topic=topic) for i in d.items))
    settings = replace(SETTINGS, from_addr=f'"{" ".join(["Lab"] * 300)}" <digest@example.org>')
    raw = message_bytes(build_message(d, settings))
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert all(
        len(line) <= 78 for line in head.split("\r\n") if not line.startswith("List-Unsubscribe:")
    )
    msg = message_from_bytes(raw, policy=policy.default)
    assert not defects(msg)
    assert msg["To"].addresses[0].display_name == name
    assert msg["From"].addresses[0].display_name == " ".join(["Lab"] * 300)
    assert msg["Subject"] == f"2 new papers on {topic.replace('-', ' ')}, Mon 02 Mar 2026"
    one_word = "x" * 1300  # no space to fold at: encoded words, which fold
    d = digest(1, titles=[one_word])
    d = Digest(d.id, d.subscriber, d.slot, (replace(d.items[0], topic=one_word),))
    raw = message_bytes(build_message(d, SETTINGS))
    lines = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert all(len(x) <= 78 for x in lines if not x.startswith(b"List-Unsubscribe:"))
    assert message_from_bytes(raw, policy=policy.default)["Subject"].startswith(
        f"1 new paper on {one_word}"
    )


def test_a_subscriber_id_with_two_dots_makes_a_well_formed_message_id_and_list_id() -> None:
    d = digest(1, sub=replace(subscriber(), id="a..b"), did="a..b.20261130T0700Z")
    msg = message_from_bytes(message_bytes(build_message(d, SETTINGS)), policy=policy.default)
    assert msg["Message-ID"] == "<a.b.20261130T0700Z@example.org>"
    assert msg["List-Id"] == "digestbot digest <a.b.digestbot.example.org>"
    assert not defects(msg)


def test_one_click_unsubscribe_is_offered_only_over_https() -> None:
    msg = parse(digest(1), replace(SETTINGS, base_url="http://localhost:8000"))
    assert msg["List-Unsubscribe"].startswith("<http://localhost:8000/unsubscribe/")
    assert msg["List-Unsubscribe-Post"] is None
    assert parse(digest(1))["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_a_trending_digest_says_trending_in_every_part() -> None:
    sub = replace(subscriber(), interests=Interests(trending=True))
    d = digest(2, sub=sub)
    r = render_email(d, SETTINGS)
    assert r.subject.startswith("2 trending papers")
    assert "2 trending papers for" in r.html and "are 2 trending papers for you" in r.text
    assert "new paper" not in r.html + r.text
    assert "2 new papers for" in render_email(digest(2), SETTINGS).html


def test_a_long_title_without_spaces_wraps_in_the_html() -> None:
    html = render_email(digest(1, titles=["x" * 300]), SETTINGS).html
    card = re.search(r'<div class="card" style="([^"]*)"', html)
    assert (
        card
        and "overflow-wrap:anywhere" in card.group(1)
        and "word-break:break-word" in card.group(1)
    )


@pytest.mark.parametrize(
    ("title", "cut"), [("<>" * 150, False), ("漢字" * 150, False), ("&" * 300, True)]
)
def test_200_items_with_300_character_titles_stay_under_100_kb(title: str, cut: bool) -> None:
    """Titles only, without links, were 244 KB (`<>` escaped) or 184 KB (CJK); titles cut to
    120 characters fit, and titles of `&` (`&amp;`, 5 bytes each) lose the last ones."""
    urls = [f"https://example.org/{i}?q=" + "a" * 1_880 for i in range(200)]
    items = tuple(
        DigestItem(replace(entry(i, f"{i:03d} {title}"), id=f"x:{i}", url=u), 1.0)
        for i, u in enumerate(urls)
    )
    d = Digest("alice.x", subscriber(), SLOT, items)
    r = render_email(d, SETTINGS)
    assert len(r.html.encode()) <= MAX_HTML
    shown = [i for i in range(200) if f"{i:03d} " in r.text]
    assert shown == list(range(len(shown))) and 0 < len(shown) <= 200
    assert "200 more in this digest:" in r.html and "200 more in this digest:" in r.text
    view = re.search(r"View in browser: (\S+)", r.text)
    assert view
    assert (len(shown) < 200) == cut
    if cut:
        left = 200 - len(shown)
        assert f"…and {left} more: {view.group(1)}" in r.text
        assert f'…and {left} more: <a class="link" href="{view.group(1)}"' in r.html
    msg = parse(d)
    assert not defects(msg)
