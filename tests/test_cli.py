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


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working folder and no digestbot variables in the environment."""
    for var in list(os.environ):
        if var.startswith(("DIGESTBOT_", "SLACK_")):
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)
    return tmp_path


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
    env = {
        "DIGESTBOT_SMTP_URL": f"smtp://digest@127.0.0.1:{refusing_smtp}",
        "DIGESTBOT_SMTP_PASSWORD": "wrong-pw",
    }
    result = init_and_run(env=env, travel=False)  # real time: the server's event loop runs on it
    assert result.exit_code == 1
    reason = (
        "the SMTP server refused the login for 'digest' (535); "
        "check DIGESTBOT_SMTP_URL and DIGESTBOT_SMTP_PASSWORD"
    )
    assert result.stdout == (
        "fetched 1 source: 28 new, 0 updated, 0 unchanged\n"
        f"example: FAILED: {reason}\n"
        "\n"
        "subscribers served  0 of 1\n"
        "entries sent        0\n"
        "failures            1\n"
        f"  example           failed: {reason}\n"
    )
    assert re.fullmatch(
        rf"ERROR bot.delivery: digest example\.\d{{8}}T0800Z for example failed: {re.escape(reason)}\n",
        result.stderr,
    ), result.stderr
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


def test_history_of_an_unknown_subscriber(here: Path) -> None:
    invoke("init", "--outbox")
    result = invoke("history", "nobody")
    assert result.exit_code == 1
    assert result.output == (
        "Error: no subscriber 'nobody': nothing in the ledger and no file "
        "subscriptions/nobody.toml; check the name (the subscriber id is the file name "
        "without .toml)\n"
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
