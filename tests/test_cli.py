"""The `digestbot` command through click's CliRunner: output, exit codes and the errors users meet."""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import pytest
import time_machine
from click.testing import CliRunner, Result
from peers import SmtpPeer
from sqlalchemy import event
from sqlalchemy.pool import Pool

from bot._console import JsonFormatter, table_lines
from bot.cli import cli
from bot.models import DigestItem, Entry
from bot.store import Store
from bot.text import printable as clean

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)  # the example subscriber's slot: 08:00 UTC that day
SLOT = "20261128T0800Z"
NO_CONFIG = (
    "Error: digestbot.toml: not found in {cwd}, and neither --config nor DIGESTBOT_CONFIG is set; "
    "run 'digestbot init' to write one here, or pass --config PATH\n"
)
# What `check` says of the subscriber `digestbot init` writes while no SMTP server is set and the
# outbox is not chosen (init without --outbox): its digests would wait.
NO_SMTP = (
    "subscriptions/example.toml: email: email needs DIGESTBOT_SMTP_URL, which is not set; set it, "
    'or write outbox_dir = "outbox" in digestbot.toml to have such digests written to files '
    "instead\n"
)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    """Run `digestbot ARGS` as the console script would (the group catches errors itself)."""
    return CliRunner().invoke(cli, list(args), env=env, prog_name="digestbot")


def init_and_run(*extra: str, env: dict[str, str] | None = None, travel: bool = True) -> Result:
    assert invoke("init", "--outbox").exit_code == 0
    if not travel:
        return invoke(*extra, "run", "--once", env=env)
    with time_machine.travel(NOW, tick=True):
        return invoke(*extra, "run", "--once", env=env)


# --- help, usage, exit codes -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_help_shows_an_example(name: str) -> None:
    result = invoke(name, "--help")
    assert result.exit_code == 0
    assert "Example" in result.output, f"'digestbot {name} --help' shows no example"


def test_main_help_documents_global_options_and_exit_codes() -> None:
    out = invoke("--help").output
    for text in (
        "--config PATH",
        "-v, --verbose",
        "-q, --quiet",
        "--log-format [text|json]",
        "0  everything went fine",
        "1  a problem you must fix; the message says how (-v shows the traceback)",
        "2  a usage error: an unknown command or option, a missing argument",
    ):
        assert text in out


@pytest.mark.parametrize(
    "args", [["nosuchcommand"], ["history"], ["run", "--nope"], ["--log-format", "xml", "check"]]
)
def test_usage_errors_exit_2(here: Path, args: list[str]) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert "Usage: digestbot" in result.output


def test_verbose_and_quiet_together_is_a_usage_error(here: Path) -> None:
    result = invoke("-v", "-q", "check")
    assert result.exit_code == 2
    assert "Error: -v and -q contradict each other; give one of them" in result.output


# --- init, check, run --once: a working setup with no edits ----------------------------------


@pytest.mark.slow  # the first run in a session imports scikit-learn
def test_init_then_check_then_run_once_works_with_no_edits(here: Path) -> None:
    result = invoke("init", "--outbox")
    assert result.exit_code == 0
    assert result.output == (
        "wrote digestbot.toml\nwrote subscriptions/example.toml\nwrote examples/papers.xml\n"
        "wrote templates/README\nwrote templates/email.html.j2\nwrote templates/email.txt.j2\n"
        "wrote templates/slack_item.md.j2\n\n"
        "Next: digestbot check && digestbot run --once   (digests land in outbox/)\n"
    )
    check = invoke("check")
    assert (check.exit_code, check.output) == (0, "No problems: 1 source, 1 subscriber.\n")
    with time_machine.travel(NOW, tick=True):
        run = invoke("run", "--once")
    assert run.exit_code == 0, run.output
    m = re.fullmatch(
        r"fetched 1 source: 28 new, 0 updated, 0 unchanged\n"
        rf"example: sent (\d+) entries to outbox/example/example\.{SLOT}\.eml\n"
        r"1 digest went to the outbox \(.*outbox\), not to anyone: .*\n"
        r"\n"
        r"subscribers served  1 of 1\n"
        r"entries sent        (\d+)\n"
        r"failures            0\n",
        run.output,
    )
    assert m, run.output
    assert m[1] == m[2] and int(m[1]) > 0
    eml = (here / "outbox" / "example" / f"example.{SLOT}.eml").read_text()
    assert "To: Example Reader <you@example.org>" in eml
    # A second pass: the slot is served, nothing is sent twice.
    with time_machine.travel(NOW, tick=True):
        again = invoke("run", "--once")
    assert again.exit_code == 0
    assert "example: 0 new entries for example (not due yet)\n" in again.output


def test_init_into_a_named_folder(here: Path) -> None:
    result = invoke("init", "mydigest")
    assert result.exit_code == 0
    assert result.output.endswith(
        "Next: cd mydigest && digestbot check && digestbot run --once   "
        "(set DIGESTBOT_SMTP_URL first, or uncomment outbox_dir for files)\n"
    )
    assert (here / "mydigest" / "examples" / "papers.xml").read_bytes().startswith(b"<?xml")


def test_init_templates_override_the_bundled_ones_from_anywhere(here: Path) -> None:
    assert invoke("init", "mydigest", "--outbox").exit_code == 0
    txt = here / "mydigest" / "templates" / "email.txt.j2"
    txt.write_text("MY OWN TEMPLATE\n" + txt.read_text())
    with time_machine.travel(NOW, tick=True):
        result = invoke("--config", "mydigest/digestbot.toml", "run", "--once")
    assert result.exit_code == 0, result.output
    eml = (here / "mydigest" / "outbox" / "example" / f"example.{SLOT}.eml").read_text()
    assert "MY OWN TEMPLATE" in eml


def test_init_refuses_to_overwrite_and_writes_nothing(here: Path) -> None:
    (here / "digestbot.toml").write_text("# mine\n")
    result = invoke("init", "--outbox")
    assert result.exit_code == 1
    assert result.output == (
        "Error: digestbot.toml already exists; digestbot init never overwrites — run it in an empty folder, "
        "or move these away first\n"
    )
    assert (here / "digestbot.toml").read_text() == "# mine\n"
    assert not (here / "subscriptions").exists()


def test_quiet_run_prints_nothing_when_all_is_well(here: Path, smtp_server: SmtpPeer) -> None:
    result = init_and_run("-q", env={"DIGESTBOT_SMTP_URL": smtp_server.url})
    assert (result.exit_code, result.output) == (0, "")
    assert smtp_server.count() == 1
    assert (invoke("-q", "check").output, invoke("-q", "check").exit_code) == ("", 0)


# --- the common mistakes: one clear line with the fix, exit 1, no traceback ----------------------


def test_missing_config(here: Path) -> None:
    result = invoke("run", "--once")
    assert result.exit_code == 1
    assert result.output == NO_CONFIG.format(cwd=here)


def test_missing_config_given_by_option(here: Path) -> None:
    result = invoke("--config", "nope.toml", "run", "--once")
    assert result.exit_code == 1
    assert result.output == (
        "Error: nope.toml: no such file; give the path of a digestbot.toml, "
        "or run 'digestbot init' to write one\n"
    )


def test_check_lists_the_missing_config_and_folder(here: Path) -> None:
    result = invoke("check")
    assert result.exit_code == 1
    assert result.output == (
        NO_CONFIG.format(cwd=here).removeprefix("Error: ")
        + "subscriptions: no such folder; create it, or set subscriptions_dir in digestbot.toml "
        "or pass --subscriptions\n"
        "2 problems found; 0 subscribers fine.\n"
    )


def test_verbose_shows_the_traceback(here: Path) -> None:
    quiet = invoke("run", "--once")
    assert "Traceback" not in quiet.output
    loud = invoke("-v", "run", "--once")
    assert loud.exit_code == 1
    assert loud.output.startswith("Traceback (most recent call last):\n")
    assert loud.output.endswith(NO_CONFIG.format(cwd=here))


def test_missing_subscriptions_folder(here: Path) -> None:
    invoke("init", "--outbox")
    (here / "subscriptions" / "example.toml").unlink()
    (here / "subscriptions").rmdir()
    result = invoke("run", "--once")
    assert result.exit_code == 1
    assert result.output == (
        "Error: subscriptions: no such folder; create it, or set subscriptions_dir in "
        "digestbot.toml or pass --subscriptions\n"
    )


def test_unreadable_subscriptions_folder(here: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # These tests run as root, for whom chmod 000 changes nothing: the refusal is simulated at the
    # one call that meets it (test_unreadable_subscriptions_folder_for_real does it with chmod).
    invoke("init", "--outbox")
    real = os.listdir

    def listdir(path: str | os.PathLike[str] = ".") -> list[str]:
        if Path(path).name == "subscriptions":
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    result = invoke("run", "--once")
    assert result.exit_code == 1
    assert result.output == (
        "Error: subscriptions: cannot read this folder (Permission denied); let the user "
        "digestbot runs as read it, e.g. chmod a+rx subscriptions\n"
    )


@pytest.mark.skipif(
    os.name != "posix" or os.geteuid() == 0, reason="root reads any folder; chmod cannot refuse it"
)
def test_unreadable_subscriptions_folder_for_real(here: Path) -> None:
    invoke("init", "--outbox")
    (here / "subscriptions").chmod(0)
    try:
        result = invoke("run", "--once")
    finally:
        (here / "subscriptions").chmod(0o755)
    assert result.exit_code == 1
    assert "Error: subscriptions: cannot read this folder (Permission denied)" in result.output


@pytest.mark.parametrize(
    "url, shown",
    [
        (
            "postgresql+psycopg://digestbot:s3cret@127.0.0.1:1/digestbot",
            "postgresql+psycopg://digestbot:***@127.0.0.1:1/digestbot",
        ),
        (
            "sqlite:////nonexistent-folder/digestbot.db",
            "sqlite:////nonexistent-folder/digestbot.db",
        ),
    ],
)
def test_database_url_that_does_not_connect(here: Path, url: str, shown: str) -> None:
    invoke("init", "--outbox")
    result = invoke("run", "--once", env={"DIGESTBOT_DATABASE_URL": url})
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot open the database {shown} (")
    assert result.output.endswith(
        "); check DIGESTBOT_DATABASE_URL and that the server is running\n"
    )
    assert "s3cret" not in result.output and "Traceback" not in result.output


@pytest.fixture
def refusing_smtp() -> Iterator[int]:
    """A real SMTP server on loopback that refuses every login."""
    with SmtpPeer(users={}) as smtp:
        yield smtp.port


def test_smtp_refusing_the_login(here: Path, refusing_smtp: int) -> None:
    """The digest is not failed: it waits, with the fix, for the first run after it."""
    env = {
        "DIGESTBOT_SMTP_URL": f"smtp://digest@127.0.0.1:{refusing_smtp}",
        "DIGESTBOT_SMTP_PASSWORD": "wrong-pw",
    }
    result = init_and_run(env=env, travel=False)  # real time: the server's event loop runs on it
    assert result.exit_code == 1
    reason = (
        f"the SMTP server 127.0.0.1:{refusing_smtp} refused the login for 'digest' (535); "
        "check the user in DIGESTBOT_SMTP_URL and DIGESTBOT_SMTP_PASSWORD; "
        "email is not tried again in this run, its digests wait for the next run"
    )
    assert result.stdout == (
        "fetched 1 source: 28 new, 0 updated, 0 unchanged\n"
        f"example: PENDING: {reason}\n"
        "\n"
        "subscribers served  0 of 1\n"
        "entries sent        0\n"
        "failures            1\n"
        f"  example           pending: {reason}\n"
    )
    assert result.stderr == f"ERROR bot.delivery: email is down: {reason}\n", result.stderr
    assert "wrong-pw" not in result.output


def test_bad_subscriber_file_is_skipped_and_counted(here: Path) -> None:
    invoke("init", "--outbox")
    (here / "subscriptions" / "zed.toml").write_text('email = "zed@example.org"\nmax_items = 0\n')
    with time_machine.travel(NOW, tick=True):
        result = invoke("run", "--once")
    assert result.exit_code == 1
    assert re.search(
        r"subscribers served +1 of 2\nentries sent +\d+\nfailures +1\n"
        r"  subscriptions/zed.toml  skipped: the file has a problem \(see the warnings\)\n$",
        result.output,
    ), result.output


def test_broken_source_is_reported_and_the_rest_goes_on(here: Path) -> None:
    invoke("init", "--outbox")
    with open(here / "digestbot.toml", "a") as f:
        f.write('\n[[sources]]\nname = "gone"\ntype = "file"\npath = "missing.xml"\n')
    with time_machine.travel(NOW, tick=True):
        result = invoke("run", "--once")
    assert "fetched 1 source: 28 new, 0 updated, 0 unchanged; 1 failed\n" in result.output
    assert (
        "fetch gone: FAILED: source 'gone': cannot read missing.xml: "
        "No such file or directory; check the path\n"
    ) in result.output
    assert re.search(r"example: sent \d+ entries", result.output)


# --- logs --------------------------------------------------------------------------------------


def test_log_format_json_writes_one_object_per_line(here: Path) -> None:
    invoke("init", "--outbox")
    with open(here / "digestbot.toml", "a") as f:
        f.write('\n[[sources]]\nname = "gone"\ntype = "file"\npath = "missing.xml"\n')
    with time_machine.travel(NOW, tick=True):
        result = invoke("--log-format", "json", "run", "--once")
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert {"level": "warning", "logger": "bot.ingest"}.items() <= records[0].items()
    assert records[0]["message"].startswith("source 'gone': cannot read")
    assert records[0]["time"].startswith("2026-11-28T12:00")


def test_json_formatter_keeps_the_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "bot.x", logging.ERROR, __file__, 1, "failed: %s", ("it",), sys.exc_info()
        )
    out = json.loads(JsonFormatter().format(record))
    assert out["message"] == "failed: it" and out["level"] == "error"
    assert out["traceback"].endswith("ValueError: boom")


# --- the store every command opens --------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--pool"],
        ["status"],
        ["history", "example"],
        ["fetch"],
        ["feedback", "example", "arxiv:2611.01001", "up"],
    ],
)
def test_every_command_opens_the_store_with_the_configured_durability(
    here: Path, args: list[str]
) -> None:
    """database_sqlite_synchronous = "FULL" holds for each connection a command makes (PRAGMA 2)."""
    invoke("init", "--outbox")
    config = here / "digestbot.toml"
    config.write_text('database_sqlite_synchronous = "FULL"\n' + config.read_text())
    assert invoke("fetch").exit_code == 0  # the example feed's entries, for feedback
    seen: list[int] = []

    def checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if isinstance(dbapi_conn, sqlite3.Connection):
            seen.append(dbapi_conn.execute("PRAGMA synchronous").fetchone()[0])

    event.listen(Pool, "checkout", checkout)
    try:
        result = invoke(*args)
    finally:
        event.remove(Pool, "checkout", checkout)
    assert "Error" not in result.output, result.output
    assert seen and set(seen) == {2}, seen


# --- history ------------------------------------------------------------------------------------


def test_history_says_what_was_sent_when_and_why(here: Path) -> None:
    invoke("init", "--outbox")
    store = Store("sqlite:///digestbot.db")
    try:
        evil = Entry("https://evil.example/x", "Evil \x1b[2J title\nnext line", published=NOW)
        good = Entry("arxiv:2611.01001", "QuickQuant", published=NOW)
        store.upsert_entries([evil, good], now=NOW)
        slot = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
        claimed = store.claim(
            "example",
            slot,
            [DigestItem(good, 0.5, ("keyword: quantization",)), DigestItem(evil, 0.25)],
            "outbox",
            more=2,
            owner="t",
            now=NOW,
        )
        assert claimed is not None
        store.mark_sent(
            claimed.digest_id, "outbox/x.eml", now=datetime(2026, 11, 27, 8, 1, tzinfo=UTC)
        )
        failed = store.claim("example", NOW, [], "email", owner="t", now=NOW)
        assert failed
        store.mark_failed(failed.digest_id, "SMTP answered 550 no such user")
    finally:
        store.close()
    result = invoke("history", "example")
    assert result.exit_code == 0
    assert result.output == (
        "example.20261128T1200Z  slot 2026-11-28 12:00 UTC  FAILED via email: SMTP answered 550 no such user\n"
        "example.20261127T0800Z  slot 2026-11-27 08:00 UTC  sent 2026-11-27 08:01 UTC via outbox, 2 entries"
        " (+2 more not sent: max_items)\n"
        "  1. QuickQuant\n"
        "     arxiv:2611.01001  score 0.500\n"
        "     why: keyword: quantization\n"
        "  2. Evil  [2J title next line\n"
        "     https://evil.example/x  score 0.250\n"
    )
    as_json = json.loads(invoke("history", "example", "--json", "--limit", "1").output)
    assert [d["status"] for d in as_json] == ["failed"]


def test_history_of_a_known_subscriber_with_nothing_sent(here: Path) -> None:
    invoke("init", "--outbox")
    result = invoke("history", "example")
    assert (result.exit_code, result.output) == (
        0,
        "example: nothing sent yet; 'digestbot run --once' sends what is due\n",
    )


def test_reading_commands_make_no_database(here: Path) -> None:
    """history and feedback before any run: no empty digestbot.db is left behind, and feedback
    (which needs the entry's row) says what to run first."""
    invoke("init", "--outbox")
    assert invoke("history", "example").exit_code == 0
    voted = invoke("feedback", "example", "arxiv:2401.00001", "up")
    assert voted.exit_code == 1
    assert voted.output == (
        "Error: no database at sqlite:///digestbot.db yet; run 'digestbot run --once' first "
        "to fetch entries\n"
    )
    assert not (here / "digestbot.db").exists()


def test_history_of_an_unknown_subscriber(here: Path) -> None:
    invoke("init", "--outbox")
    result = invoke("history", "nobody")
    assert result.exit_code == 1
    assert result.output == (
        "Error: no subscriber 'nobody': nothing in the ledger and no file "
        "subscriptions/nobody.toml; check the name (the subscriber id is the file name "
        "without .toml)\n"
    )


def test_history_json_of_an_unknown_subscriber_is_an_error_naming_the_resolved_file(
    here: Path,
) -> None:
    """--json printed [] and exited 0; the message named subscriptions/x.toml wherever it was."""
    lab = here / "lab"
    invoke("init", "--outbox", str(lab))
    os.chdir(lab / "subscriptions")  # the folder named is the config's, not one made of the cwd
    error = (
        f"Error: no subscriber 'nobody': nothing in the ledger and no file "
        f"{lab / 'subscriptions' / 'nobody.toml'}; check the name (the subscriber id is the file "
        "name without .toml)\n"
    )
    for args in (["history", "nobody", "--json"], ["history", "nobody"]):
        result = invoke("--config", str(lab / "digestbot.toml"), *args)
        assert (result.exit_code, result.output) == (1, error)
    known = invoke("--config", str(lab / "digestbot.toml"), "history", "example", "--json")
    assert (known.exit_code, known.output) == (0, "[]\n")


def test_preview_without_a_database_or_of_an_unknown_subscriber_exits_1(here: Path) -> None:
    """Both exited 2, a usage error, where history and feedback exit 1 (README's exit codes)."""
    invoke("init", "--outbox")
    result = invoke("preview", "example")
    assert (result.exit_code, result.output) == (
        1,
        (
            "Error: no database at sqlite:///digestbot.db yet; run 'digestbot run --once' first to "
            "fetch entries\n"
        ),
    )
    assert invoke("migrate").exit_code == 0
    result = invoke("preview", "nobody")
    assert (result.exit_code, result.output) == (
        1,
        (
            "Error: no subscriber 'nobody'; the subscribers are: example (a file subscriber's id is "
            "its file name without .toml; 'digestbot status' lists them all)\n"
        ),
    )
    # A subscriber who is there but receives nothing now is not "no subscriber".
    from bot.config import load_settings
    from bot.store import Store

    settings = load_settings(str(here / "digestbot.toml"), {})
    with Store(settings.database_url) as store:
        store.set_subscriber_status("example", "unsubscribed")
    result = invoke("preview", "example")
    assert result.exit_code == 1 and result.output.startswith(
        "Error: 'example' is unsubscribed: no digest goes to them now"
    ), result.output
    with Store(settings.database_url) as store:
        store.set_subscriber_status("example", "active")
        store.suspend("example", "550 5.1.1 user unknown")
    result = invoke("preview", "example")
    assert result.output == (
        "Error: 'example' is suspended by bounces: no digest goes to them now; "
        "'digestbot resume example' lifts it\n"
    )


# --- match and feedback -------------------------------------------------------------------------


def test_match_scores_files_without_a_database(here: Path) -> None:
    invoke("init", "--outbox")
    result = invoke("match", "--entries", "examples/papers.xml", "--json")
    assert result.exit_code == 0
    out = json.loads(result.output)
    (sub,) = out["subscribers"]
    assert sub["id"] == "example" and sub["entries"] and all(e["selected"] for e in sub["entries"])
    assert not (here / "digestbot.db").exists()
    text = invoke("match", "--entries", "examples/papers.xml")
    assert text.output.startswith(f"example: {len(sub['entries'])} selected\n")


def test_match_with_an_unreadable_entries_file(here: Path) -> None:
    invoke("init", "--outbox")
    result = invoke("match", "--entries", "nope.xml")
    assert result.exit_code == 1
    assert (
        result.output
        == "Error: source 'nope.xml': cannot read nope.xml: No such file or directory; check the path\n"
    )


def test_feedback_is_recorded_and_an_unknown_entry_is_named(here: Path) -> None:
    init_and_run()
    ok = invoke("feedback", "example", "arxiv:2611.01001", "up")
    assert (ok.exit_code, ok.output) == (0, "Recorded 👍 from example on arxiv:2611.01001.\n")
    bad = invoke("feedback", "example", "arxiv:0000.00000", "down")
    assert bad.exit_code == 1
    assert bad.output == (
        "Error: no entry 'arxiv:0000.00000' in the store; give an id that "
        "'digestbot history example' shows\n"
    )
    assert invoke("feedback", "example", "arxiv:2611.01001", "sideways").exit_code == 2


# --- console helpers ----------------------------------------------------------------------------


def test_clean_removes_terminal_controls() -> None:
    assert clean("a\x1b[31mb\x07c\x9bd\te\u202ef") == "a [31mb c d e f"


def test_table_lines_align_columns() -> None:
    assert table_lines(
        [["a", "1", "x"], ["long name", "22", "y y"]], header=["name", "n", "what"]
    ) == ["name       n   what", "a          1   x", "long name  22  y y"]


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal (POSIX)")
def test_progress_bars_on_a_terminal(here: Path) -> None:
    """Through a real pseudo-terminal: the bars for fetching and sending are drawn."""
    assert invoke("init", "--outbox").exit_code == 0
    master, slave = os.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "bot", "run", "--once"],
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=slave,
            timeout=120,
            check=False,
            env={**os.environ, "COLUMNS": "100"},
        )
        os.close(slave)
        chunks = []
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other end is closed and drained
                break
            if not data:
                break
            chunks.append(data)
    finally:
        os.close(master)
    out = b"".join(chunks).decode()
    assert proc.returncode == 0, out
    assert "Fetching" in out and "Sending" in out and "1/1" in out
    assert "subscribers served  1 of 1" in out


@pytest.mark.slow
def test_a_reader_that_goes_away_stops_it_quietly(here: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "init", "new"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `digestbot ... | head -0`
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 1
    assert err == b""
    assert (here / "new" / "digestbot.toml").is_file()


def test_no_progress_bar_when_not_a_terminal(here: Path) -> None:
    result = init_and_run()
    assert "Fetching" not in result.output and "%" not in result.output


def test_the_group_is_a_click_group() -> None:
    assert isinstance(cli, click.Group) and {"init", "history", "run", "check"} <= set(cli.commands)


# --- paths beside the config, no config no database (issue 15.1, 15.12) --------------------------


@pytest.mark.slow  # imports scikit-learn for the run
def test_run_from_another_folder_uses_the_ledger_beside_the_config(here: Path) -> None:
    lab = here / "lab"
    assert invoke("init", "--outbox", str(lab)).exit_code == 0
    elsewhere = here / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)
    config = str(lab / "digestbot.toml")
    with time_machine.travel(NOW, tick=True):
        first = invoke("--config", config, "run", "--once")
        again = invoke("--config", config, "run", "--once")
    assert first.exit_code == 0, first.output
    assert "example: sent" in first.output
    assert (lab / "digestbot.db").is_file() and not (elsewhere / "digestbot.db").exists()
    assert not (elsewhere / "outbox").exists() and (lab / "outbox" / "example").is_dir()
    assert again.exit_code == 0, again.output
    assert "example: 0 new entries" in again.output and "sent" not in again.output.split("\n")[1]
    assert len(list((lab / "outbox" / "example").iterdir())) == 1  # sent once, not twice


TOPIC = """\
[[topic]]
slug = "lab-robots"
name = "Our robots"
description = "The lab's own topic"
vocabulary = ["robot arm"]
"""


def test_check_from_another_folder_reads_the_topics_beside_the_config(here: Path) -> None:
    lab = here / "lab"
    invoke("init", "--outbox", str(lab))
    (lab / "topics.toml").write_text(TOPIC)
    example = lab / "subscriptions" / "example.toml"
    example.write_text(example.read_text().replace("# topics = [", "topics = ['lab-robots', "))
    os.chdir(here / "subscriptions" if (here / "subscriptions").is_dir() else here)
    result = invoke("--config", str(lab / "digestbot.toml"), "check")
    assert (result.exit_code, result.output) == (0, "No problems: 1 source, 1 subscriber.\n")
    (lab / "topics.toml").unlink()  # the same file without it names the topic
    result = invoke("--config", str(lab / "digestbot.toml"), "check")
    assert result.exit_code == 1
    assert "'lab-robots' is not a known topic" in result.output


def test_check_with_a_bad_config_still_reads_the_subscriptions_beside_it(here: Path) -> None:
    lab = here / "lab"
    invoke("init", "--outbox", str(lab))
    config = lab / "digestbot.toml"
    config.write_text("bogus_key = 1\n" + config.read_text())
    example = lab / "subscriptions" / "example.toml"
    example.write_text(example.read_text() + "colour = 'blue'\n")
    elsewhere = here / "elsewhere"
    elsewhere.mkdir()
    os.chdir(elsewhere)  # no subscriptions/ here: the config's folder is the one read
    result = invoke("--config", str(config), "check")
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0].startswith(f"{config}: bogus_key: unknown key; the keys are ")
    assert lines[1].startswith(f"{example}: interests.colour: unknown key")
    assert lines[2:] == ["2 problems found; 0 subscribers fine."]
    # a file that is not TOML at all: its folder is still the one read
    config.write_text("bogus = \n")
    lines = invoke("--config", str(config), "check").output.splitlines()
    assert lines[0].startswith(f"{config}: not valid TOML")
    assert lines[1].startswith(f"{example}: interests.colour: unknown key")


@pytest.mark.parametrize(
    "args",
    [
        ["fetch"],
        ["history", "alice"],
        ["feedback", "alice", "arxiv:2611.01001", "up"],
        ["status"],
        ["preview", "alice"],
        ["migrate"],
    ],
)
def test_commands_with_a_database_need_a_config(here: Path, args: list[str]) -> None:
    result = invoke(*args)
    assert (result.exit_code, result.output) == (1, NO_CONFIG.format(cwd=here))
    assert list(here.iterdir()) == []  # no ./digestbot.db


# --- check: what it checks beyond the keys (issue 15.5, 15.3, 17.5) -----------------------------


def test_check_names_bad_values_and_a_schedule_that_never_fires(here: Path) -> None:
    invoke("init")
    config = here / "digestbot.toml"
    config.write_text(
        config.read_text()
        .replace('# from = "digestbot <digestbot@localhost>"', 'from = "nobody"')
        .replace("# [smtp]", "[smtp]\nrate = -5\n")
        .replace(
            '# [[sources]]\n# name = "arxiv-lg"',
            '[[sources]]\nname = "lab"\ntype = "rss"\nurl = "https://example.org/f"\n'
            'timeout = "30"\n# name = "arxiv-lg"',
        )
    )
    example = here / "subscriptions" / "example.toml"
    example.write_text(example.read_text().replace('"0 8 * * *"', '"0 8 31 2 *"'))
    result = invoke("check", env={"DIGESTBOT_SMTP_URL": "mail.example.org:587"})
    assert result.exit_code == 1
    assert result.output == (
        "digestbot.toml: sources[lab]: timeout = '30' is not a number > 0; write e.g. "
        "timeout = 30 in its [[sources]] table\n"
        "environment: DIGESTBOT_SMTP_URL: 'mail.example.org:587' is not an SMTP URL; write "
        "smtp://user@host:587 (STARTTLS), smtps://host:465 (TLS) or smtp://127.0.0.1:2525 "
        "(plain)\n"
        "digestbot.toml: from: 'nobody' is not an address; write e.g. "
        "'Lab digest <digest@example.org>'\n"
        "digestbot.toml: smtp.rate: -5 is negative; write messages per second, e.g. rate = 10 "
        "(0: no limit)\n"
        "subscriptions/example.toml: schedule: '0 8 31 2 *' never fires (no such date within "
        '8 years); write a date that exists, e.g. "0 8 28 2 *"\n'
        "5 problems found; 0 subscribers fine.\n"
    )


@pytest.fixture
def fresh_templates() -> Iterator[None]:
    """Templates read anew: the environment is cached per templates_dir ("templates" in each test's
    own folder)."""
    from bot.render import environment

    environment.cache_clear()
    yield
    environment.cache_clear()


def test_check_names_the_template_line_of_a_syntax_error(here: Path, fresh_templates: None) -> None:
    invoke("init")
    (here / "templates" / "email.txt.j2").write_text("Hello\n{% if digest %}\nno end\n")
    result = invoke("check")
    assert result.exit_code == 1
    assert result.output == (
        "templates/email.txt.j2: line 3: Unexpected end of template. Jinja was looking for the "
        "following tags: 'elif' or 'else' or 'endif'. The innermost block that needs to be "
        "closed is 'if'.; fix the template (README, 'Templates', lists what it may use)\n"
        f"{NO_SMTP}2 problems found; 1 subscriber: 1 would wait on a channel.\n"
    )


def test_check_names_the_template_line_of_an_undefined_name(
    here: Path, fresh_templates: None
) -> None:
    invoke("init")
    html = here / "templates" / "email.html.j2"
    lines = html.read_text().splitlines()
    lines.insert(2, "{{ subscriber.nmae }}")
    html.write_text("\n".join(lines) + "\n")
    result = invoke("check")
    assert result.exit_code == 1
    assert result.output == (
        "templates/email.html.j2: line 3: 'bot.models.Subscriber object' has no attribute "
        "'nmae'; fix the template (README, 'Templates', lists what it may use)\n"
        f"{NO_SMTP}2 problems found; 1 subscriber: 1 would wait on a channel.\n"
    )


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        ("   TL;DR: {{ item.tldr }}", "   TL;DR: {{ item.tlrd }}", 15),  # only HF papers have one
        ("- {{ item.title }}", "- {{ item.titel }}", 33),  # only a digest too long for the mail
    ],
)
def test_check_renders_every_branch_a_digest_can_take(
    here: Path, fresh_templates: None, old: str, new: str, line: int
) -> None:
    """A mistake inside `{% if item.tldr %}` or `{% for item in brief %}` passed check (its
    sample had no HF paper and fit the mail) and then held every Hugging Face digest."""
    invoke("init")
    text = here / "templates" / "email.txt.j2"
    assert old in text.read_text()
    text.write_text(text.read_text().replace(old, new))
    result = invoke("check")
    assert result.exit_code == 1
    attribute = new.split("item.")[1].split(" ")[0]
    assert result.output.startswith(
        f"templates/email.txt.j2: line {line}: 'bot.items.ItemView object' has no attribute "
        f"'{attribute}'; fix the template"
    ), result.output


def test_mail_to_another_host_without_a_key_is_refused_at_start_and_by_check(here: Path) -> None:
    invoke("init")
    env = {"DIGESTBOT_SMTP_URL": "smtp://digest@mail.example.org:587"}
    check = invoke("check", env=env)
    assert check.exit_code == 1
    assert check.output.startswith(
        "environment: DIGESTBOT_SECRET_KEY: unset, so the feedback and unsubscribe links in "
        "mail to mail.example.org could be forged; set it to a long random string"
    )
    run = invoke("run", "--once", env=env)
    assert run.exit_code == 1
    assert run.output.startswith("Error: DIGESTBOT_SECRET_KEY: unset, so the feedback")
    assert run.output.count("\n") == 1 and not (here / "digestbot.db").exists()
    env["DIGESTBOT_SECRET_KEY"] = "k"
    run = invoke("run", "--once", env=env)
    assert run.output == (
        "Error: base_url: 'http://localhost:8000' points at this machine, so the unsubscribe and "
        "👍/👎 links in mail to mail.example.org would be dead; set base_url (or "
        "DIGESTBOT_BASE_URL) to where `digestbot serve` is reached, e.g. "
        "https://digest.example.org (for a trial with a mail catcher: DIGESTBOT_LOCAL_LINKS=1)\n"
    )


def test_a_webhook_variable_must_be_a_slack_webhook_one(here: Path) -> None:
    invoke("init")
    example = here / "subscriptions" / "example.toml"
    example.write_text(
        example.read_text().replace(
            'email = "you@example.org"', 'slack_webhook_env = "DIGESTBOT_SMTP_PASSWORD"'
        )
    )
    env = {"DIGESTBOT_SMTP_PASSWORD": "hunter2-secret"}
    result = invoke("check", env=env)
    assert result.exit_code == 1
    assert result.output == (
        "subscriptions/example.toml: slack_webhook_env: 'DIGESTBOT_SMTP_PASSWORD' is not an "
        "environment variable named SLACK_WEBHOOK_…; write e.g. "
        'slack_webhook_env = "SLACK_WEBHOOK_ALICE"\n'
        "1 problem found; 0 subscribers fine.\n"
    )
    with time_machine.travel(NOW, tick=True):
        run = invoke("run", "--once", env=env)
    assert "hunter2" not in run.output


# --- migrate -------------------------------------------------------------------------------------


def test_migrate_upgrades_sqlite_and_prints_the_sql(here: Path) -> None:
    invoke("init")
    planned = invoke("migrate", "--sql")
    assert planned.exit_code == 0, planned.output
    assert "CREATE TABLE" in planned.stdout and "would" in planned.stderr
    assert not (here / "digestbot.db").exists()  # --sql changes nothing
    done = invoke("migrate")
    assert done.exit_code == 0 and done.stderr == ""
    assert done.stdout.startswith("sqlite:///digestbot.db: ")
    again = invoke("migrate")
    assert again.stdout.endswith("the newest this digestbot knows; nothing to do\n")


def test_migrate_upgrades_postgresql(
    pg_url: str, here: Path
) -> None:  # pg_url before here clears DIGESTBOT_*
    env = {"DIGESTBOT_DATABASE_URL": pg_url}
    done = invoke("migrate", env=env)
    assert done.exit_code == 0, done.output
    assert "nothing to do" not in done.stdout
    assert invoke("migrate", env=env).stdout.endswith("nothing to do\n")
    assert "nothing to do" in invoke("migrate", "--sql", env=env).stderr


def test_migrate_failure_is_one_line_and_exit_1(here: Path) -> None:
    url = "postgresql+psycopg://nobody:pw@127.0.0.1:1/none"
    result = invoke("migrate", env={"DIGESTBOT_DATABASE_URL": url})
    assert result.exit_code == 1
    assert result.output.startswith(
        "Error: cannot open the database postgresql+psycopg://nobody:***@127.0.0.1:1/none ("
    )
    assert ":pw@" not in result.output and "Traceback" not in result.output


# --- secrets masked at the logging layer (issue 17.5) -------------------------------------------


def test_logs_mask_webhooks_tokens_and_passwords_from_any_library(here: Path) -> None:
    from io import StringIO

    from bot._console import setup_logging

    out = StringIO()
    setup_logging(2, False, "text", stream=out)
    logging.getLogger("slack_sdk.webhook.client").debug(
        "Sending a request - url: %s", "https://hooks.slack.com/services/T000/B000/XXXXsecret"
    )
    logging.getLogger("slack_sdk.web.base_client").debug("token: xoxb-1234-5678-abcdef")
    logging.getLogger("urllib3.connectionpool").debug(
        '%s://%s:%s "%s %s %s" %s %s',
        "https",
        "api.example.org",
        443,
        "GET",
        "/v1?token=tok123&api_key=key456&q=ok",
        "HTTP/1.1",
        200,
        None,
    )
    logging.getLogger("bot.store").info(
        "opening postgresql+psycopg://digest:pgsecret@db/digest and "
        "postgresql://db/digest?password=pw789&sslmode=require"
    )
    try:
        raise ValueError("bad url https://hooks.slack.com/services/T1/B1/tracesecret")
    except ValueError:
        logging.getLogger("bot").exception("failed")
    text = out.getvalue()
    for secret in (
        "XXXXsecret",
        "1234-5678",
        "tok123",
        "key456",
        "pgsecret",
        "pw789",
        "tracesecret",
    ):
        assert secret not in text, text
    assert "hooks.slack.com/services/***" in text and "xoxb-***" in text
    assert "?token=***&api_key=***&q=ok" in text and "digest:***@db" in text
    assert "?password=***&sslmode=require" in text


def test_urllib3s_own_debug_log_is_masked_at_vv(here: Path) -> None:
    """A real request through urllib3 at -vv: its "GET /path?token=…" line comes out masked."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer
    from io import StringIO

    import urllib3

    from bot._console import setup_logging

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    out = StringIO()
    setup_logging(2, False, "json", stream=out)
    try:
        with urllib3.PoolManager() as http:
            http.request("GET", f"http://127.0.0.1:{server.server_port}/x?token=s3cr3t&api_key=k3y")
    finally:
        server.shutdown()
        server.server_close()
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    (seen,) = [
        r["message"]
        for r in lines
        if r["logger"] == "urllib3.connectionpool" and "GET" in r["message"]
    ]
    assert "/x?token=***&api_key=***" in seen
    assert "s3cr3t" not in out.getvalue() and "k3y" not in out.getvalue()


# --- run --once with a failed source: exit 1, the failure printed once (issue 15.4) -------------


def broken_source(here: Path) -> None:
    with open(here / "digestbot.toml", "a") as f:
        f.write('\n[[sources]]\nname = "gone"\ntype = "file"\npath = "missing.xml"\n')


@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_run_once_exits_1_when_a_source_failed_and_says_it_once(
    here: Path, quiet: list[str]
) -> None:
    invoke("init", "--outbox")
    broken_source(here)
    with time_machine.travel(NOW, tick=True):
        result = invoke(*quiet, "run", "--once")
    assert result.exit_code == 1, result.output
    failure = "source 'gone': cannot read missing.xml"
    assert result.stdout.count(failure) == 1 and failure not in result.stderr, result.output
    assert result.stderr == ""
    assert (here / "outbox" / "example" / f"example.{SLOT}.eml").is_file()  # still sent


def test_run_once_exits_1_when_every_source_failed(here: Path) -> None:
    invoke("init")
    (here / "examples" / "papers.xml").unlink()
    with time_machine.travel(NOW, tick=True):
        result = invoke("run", "--once")
    assert result.exit_code == 1
    assert "fetched 0 sources: 0 new, 0 updated, 0 unchanged; 1 failed\n" in result.stdout
    assert result.stdout.count("cannot read examples/papers.xml") == 1
    assert result.stderr == ""


def test_run_once_with_verbose_keeps_the_failure_in_the_log_too(here: Path) -> None:
    invoke("init")
    broken_source(here)
    ingest = logging.getLogger("bot.ingest")
    level = ingest.level
    ingest.setLevel(logging.NOTSET)  # `fetch` in an earlier test left it at ERROR
    try:
        with time_machine.travel(NOW, tick=True):
            result = invoke("-v", "run", "--once")
    finally:
        ingest.setLevel(level)
    assert result.exit_code == 1
    assert "WARNING bot.ingest: source 'gone': cannot read missing.xml" in result.stderr


# --- a damaged database: one line, for every command that opens it (issue 17.11) ---------------

DAMAGED = (
    "the database file digestbot.db is damaged or is not a database (file is not a database); "
    "restore it from a backup, or move it away (mv digestbot.db digestbot.db.damaged) and "
    "digestbot starts a new, empty one"
)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--once"],
        ["fetch"],
        ["status"],
        ["status", "--pool"],
        ["history", "example"],
        ["feedback", "example", "arxiv:2611.01001", "up"],
        ["preview", "example"],
        ["serve", "--port", "1"],
    ],
)
def test_a_damaged_database_is_one_line_with_the_fix(here: Path, args: list[str]) -> None:
    invoke("init")
    (here / "digestbot.db").write_bytes(os.urandom(8192))
    result = invoke(*args, env={"DIGESTBOT_SECRET_KEY": "k" * 32})
    assert (result.exit_code, result.output) == (1, f"Error: {DAMAGED}\n")
    verbose = invoke("-v", *args, env={"DIGESTBOT_SECRET_KEY": "k" * 32})
    assert "Traceback" in verbose.output and verbose.output.endswith(f"Error: {DAMAGED}\n")


def test_check_counts_a_damaged_database_as_a_problem(here: Path) -> None:
    invoke("init")
    (here / "digestbot.db").write_bytes(b"not a database at all " * 400)
    result = invoke("check")
    assert (result.exit_code, result.output) == (
        1,
        f"{DAMAGED}\n{NO_SMTP}2 problems found; 1 subscriber: 1 would wait on a channel.\n",
    )


# --- check names a channel that cannot send: run would leave those digests waiting -------------

WAITS = (
    'set it, or write outbox_dir = "outbox" in digestbot.toml to have such digests written to '
    "files instead\n"
)


def subscriber_file(here: Path, sid: str, destination: str) -> None:
    (here / "subscriptions" / f"{sid}.toml").write_text(
        f'{destination}\nschedule = "0 8 * * *"\n[interests]\nkeywords = ["quantization"]\n'
    )


def test_a_fresh_init_without_the_outbox_is_told_to_set_the_smtp_url_as_init_says(
    here: Path,
) -> None:
    init = invoke("init")
    assert "(set DIGESTBOT_SMTP_URL first, or uncomment outbox_dir for files)" in init.output
    check = invoke("check")
    assert (check.exit_code, check.output) == (
        1,
        f"{NO_SMTP}1 problem found; 1 subscriber: 1 would wait on a channel.\n",
    )
    sent = invoke("check", env={"DIGESTBOT_SMTP_URL": "smtp://127.0.0.1:2525"})
    assert (sent.exit_code, sent.output) == (0, "No problems: 1 source, 1 subscriber.\n")
    with closing(Store("sqlite:///digestbot.db")) as store:  # bounced: `run` skips them
        store.suspend("example", "hard bounce")
    suspended = invoke("check")
    assert (suspended.exit_code, suspended.output) == (0, "No problems: 1 source, 1 subscriber.\n")


@pytest.mark.parametrize(
    ("destination", "line", "fix"),
    [
        (
            'slack_channel = "#papers"',
            "slack_channel: Slack needs SLACK_BOT_TOKEN, which is not set",
            {"SLACK_BOT_TOKEN": "xoxb-1"},
        ),
        (
            'slack_webhook_env = "SLACK_WEBHOOK_LAB"',
            (
                "slack_webhook_env: Slack needs the variable SLACK_WEBHOOK_LAB "
                "(slack_webhook_env), which is not set"
            ),
            {"SLACK_WEBHOOK_LAB": "https://hooks.slack.com/services/T/B/x"},
        ),
    ],
)
def test_check_names_a_slack_file_subscriber_its_channel_cannot_reach(
    here: Path, destination: str, line: str, fix: dict[str, str]
) -> None:
    invoke("init")
    (here / "subscriptions" / "example.toml").unlink()
    subscriber_file(here, "lab", destination)
    check = invoke("check")
    assert (check.exit_code, check.output) == (
        1,
        f"subscriptions/lab.toml: {line}; {WAITS}1 problem found; 1 subscriber: 1 would wait on a channel.\n",
    )
    fixed = invoke("check", env=fix)
    assert (fixed.exit_code, fixed.output) == (0, "No problems: 1 source, 1 subscriber.\n")
    config = here / "digestbot.toml"  # the outbox chosen: such digests go to files, none waits
    config.write_text(
        config.read_text().replace('# outbox_dir = "outbox"', 'outbox_dir = "outbox"')
    )
    outbox = invoke("check")
    assert (outbox.exit_code, outbox.output) == (0, "No problems: 1 source, 1 subscriber.\n")


def test_check_names_email_subscribers_without_smtp_in_one_line(here: Path) -> None:
    invoke("init")
    for sid in ("alice", "bob", "carol", "dave"):
        subscriber_file(here, sid, f'email = "{sid}@example.org"')
    subscriber_file(here, "lab", 'slack_channel = "#papers"')
    check = invoke("check")
    assert check.exit_code == 1
    assert check.output == (
        "5 subscribers (alice, bob, carol…): email: email needs DIGESTBOT_SMTP_URL, which is not "
        f"set; {WAITS}"
        f"subscriptions/lab.toml: slack_channel: Slack needs SLACK_BOT_TOKEN, which is not set; {WAITS}"
        "2 problems found; 6 subscribers: 6 would wait on a channel.\n"
    )
    env = {"DIGESTBOT_SMTP_URL": "smtp://127.0.0.1:2525", "SLACK_BOT_TOKEN": "xoxb-1"}
    fine = invoke("check", env=env)
    assert (fine.exit_code, fine.output) == (0, "No problems: 1 source, 6 subscribers.\n")


def test_a_database_damaged_after_it_was_opened(here: Path) -> None:
    """A good header, pages of garbage: sqlite3 says 'malformed' at the first query."""
    init_and_run()
    db = here / "digestbot.db"
    sqlite3.connect(db).execute("PRAGMA wal_checkpoint(TRUNCATE)").close()
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = os.urandom(len(data) - page)  # everything after the first page
    db.write_bytes(bytes(data))
    result = invoke("history", "example")
    assert result.exit_code == 1
    assert re.fullmatch(
        r"Error: the database file digestbot.db is damaged or is not a database \(.+\); "
        r"restore it from a backup, or move it away \(mv digestbot.db digestbot.db.damaged\) "
        r"and digestbot starts a new, empty one\n",
        result.output,
    ), result.output


# --- feedback and history refuse what does not exist (issue 15.12) ------------------------------


def votes() -> list[tuple[str, str, int]]:
    with closing(sqlite3.connect("digestbot.db")) as db:
        return sorted(db.execute("SELECT subscriber_id, entry_id, vote FROM feedback").fetchall())


def test_feedback_for_nobody_is_refused_and_records_nothing(here: Path) -> None:
    init_and_run()
    result = invoke("feedback", "nobody", "arxiv:2611.01001", "up")
    assert (result.exit_code, result.output) == (
        1,
        (
            "Error: no subscriber 'nobody'; the subscribers are: example (a file subscriber's id is "
            "its file name without .toml; 'digestbot status' lists them all)\n"
        ),
    )
    assert votes() == []


@pytest.mark.parametrize(
    "given",
    [
        "2611.01001",
        "2611.01001v2",
        "arXiv:2611.01001v1",
        "https://arxiv.org/abs/2611.01001",
        "http://arxiv.org/abs/2611.01001v3",
        "https://arxiv.org/pdf/2611.01001v2",
        "https://arxiv.org/pdf/2611.01001.pdf",
    ],
)
def test_feedback_takes_an_arxiv_paper_however_it_is_written(here: Path, given: str) -> None:
    init_and_run()
    result = invoke("feedback", "example", given, "down")
    assert (result.exit_code, result.output) == (
        0,
        "Recorded 👎 from example on arxiv:2611.01001.\n",
    )
    assert votes() == [("example", "arxiv:2611.01001", -1)]


def test_feedback_from_a_web_subscriber_and_on_an_unknown_entry(here: Path) -> None:
    init_and_run()
    with closing(Store("sqlite:///digestbot.db")) as store:
        store.request_web_subscription(
            "web-1", "carol@example.org", "", {"keywords": ["llm"]}, "0 8 * * *", "UTC", 5
        )
        store.set_web_status("web-1", "active")
    assert invoke("feedback", "web-1", "2611.01001", "up").exit_code == 0
    bad = invoke("feedback", "web-1", "2611.99999", "up")
    assert (bad.exit_code, bad.output) == (
        1,
        (
            "Error: no entry 'arxiv:2611.99999' in the store; give an id that "
            "'digestbot history web-1' shows\n"
        ),
    )
    assert votes() == [("web-1", "arxiv:2611.01001", 1)]
    history = invoke("history", "web-1")  # a web subscriber with nothing sent is known
    assert (history.exit_code, history.output) == (
        0,
        "web-1: nothing sent yet; 'digestbot run --once' sends what is due\n",
    )


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_history_limit_below_one_is_a_usage_error(
    backend_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: str
) -> None:
    monkeypatch.chdir(tmp_path)  # (not `here`: it empties DIGESTBOT_TEST_DATABASE_URL too)
    invoke("init")
    result = invoke(
        "history", "example", "--limit", limit, env={"DIGESTBOT_DATABASE_URL": backend_url}
    )
    assert result.exit_code == 2
    assert f"Invalid value for '-n' / '--limit': {limit} is not in the range x>=1." in result.output
    assert "Traceback" not in result.output


# --- status and check show the roster run uses: web subscribers, marks (15.8, 17.12) -----------


def web_and_marks() -> None:
    """What the web front writes: a confirmed, a pending and a departed web subscriber; the
    file subscriber 'example' unsubscribed by one click."""
    with closing(Store("sqlite:///digestbot.db")) as store:
        for sid, email in (("web-1", "carol@example.org"), ("web-2", "dave@example.org")):
            store.request_web_subscription(
                sid, email, "", {"keywords": ["llm"]}, "0 9 * * *", "Europe/Berlin", 5, NOW
            )
        store.request_web_subscription(
            "web-3", "eve@example.org", "", {"keywords": ["llm"]}, "0 9 * * *", "UTC", 5, NOW
        )
        store.set_web_status("web-1", "active", NOW)
        store.set_web_status("web-3", "active", NOW)
        store.set_web_status("web-3", "unsubscribed", NOW)
        store.set_subscriber_status("example", "unsubscribed", NOW)  # as the web front does


def test_status_and_check_show_web_subscribers_and_who_left(here: Path) -> None:
    init_and_run()
    web_and_marks()
    with time_machine.travel(NOW, tick=False):
        status = invoke("status", "--no-items")
    assert status.exit_code == 0, status.output
    lines = status.output.split("Pending digests")[0].splitlines()
    assert re.fullmatch(
        r"    last digest: 2026-11-28 08:00 UTC, sent 2026-11-28 12:00 UTC, \d+ entries", lines[3]
    ), lines[3]
    assert lines[:3] + lines[4:] == [
        "Subscribers (4, 1 receive digests):",
        '  example  you@example.org  "0 8 * * *" UTC  (file, unsubscribed)',
        "    next digest: none, unsubscribed on 2026-11-28 12:00 UTC (address you@example.org)",
        '  web-1  carol@example.org  "0 9 * * *" Europe/Berlin  (web, active)',
        "    next digest: 2026-11-29 09:00 CET (08:00 UTC)",
        "    last digest: none yet",
        '  web-2  dave@example.org  "0 9 * * *" Europe/Berlin  (web, pending confirmation)',
        "    next digest: none until the address is confirmed (asked 2026-11-28 12:00 UTC)",
        "    last digest: none yet",
        '  web-3  eve@example.org  "0 9 * * *" UTC  (web, unsubscribed)',
        "    next digest: none, unsubscribed since 2026-11-28 12:00 UTC",
        "    last digest: none yet",
    ]
    check = invoke("check")
    assert (check.exit_code, check.output) == (
        0,
        (
            "subscriptions/example.toml: unsubscribed on 2026-11-28 12:00 UTC (address "
            "you@example.org): no digests until resumed on the manage page\n"
            "No problems: 1 source, 1 subscriber (0 from files, 1 from the web; not receiving: "
            "1 pending confirmation, 2 unsubscribed).\n"
        ),
    )


def test_a_new_address_in_the_file_starts_fresh(here: Path) -> None:
    """The mark belongs to the address that unsubscribed: a new person in the file gets digests,
    and status and check say the old mark is ignored."""
    init_and_run()
    web_and_marks()
    assert invoke("status").exit_code == 0  # reads the roster: the mark is tied to you@
    example = here / "subscriptions" / "example.toml"
    example.write_text(example.read_text().replace("you@example.org", "new@example.org"))
    later = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    with time_machine.travel(later, tick=False):
        status = invoke("status", "--no-items")
    assert status.output.splitlines()[:4] == [
        "Subscribers (4, 2 receive digests):",
        '  example  new@example.org  "0 8 * * *" UTC  (file, active)',
        "    next digest: 2026-11-30 08:00 UTC",
        (
            "    mark for an old address, ignored: unsubscribed on 2026-11-28 12:00 UTC "
            "(address you@example.org)"
        ),
    ]
    check = invoke("check")
    assert (check.exit_code, check.output) == (
        0,
        (
            "subscriptions/example.toml: mark for an old address, ignored: unsubscribed on "
            "2026-11-28 12:00 UTC (address you@example.org)\n"
            "No problems: 1 source, 2 subscribers (1 from file, 1 from the web; not receiving: "
            "1 pending confirmation, 1 unsubscribed; 1 mark for an old address ignored).\n"
        ),
    )
    with time_machine.travel(later, tick=True):
        run = invoke("run", "--once")
    # example is served again (its papers went to it before: nothing new to send)
    assert "example: 0 new entries for example\n" in run.output, run.output
