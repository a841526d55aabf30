"""The embedded default, end to end: a fresh copy of the repository, `digestbot run --once` twice."""

from __future__ import annotations

import email
import email.policy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # each test runs digestbot as a process, some twice


def digestbot(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # The code of this tree, not whatever copy of digestbot the interpreter has installed.
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """What a fresh clone holds of the embedded default."""
    for name in ("digestbot.toml", "examples", "subscriptions"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    return tmp_path


def test_run_once_fills_the_outbox_and_a_second_run_sends_nothing(checkout: Path) -> None:
    first = digestbot(checkout, "run", "--once")
    assert first.returncode == 0, first.stderr
    assert "fetched 1 source: 28 new, 0 updated, 0 unchanged" in first.stdout
    email_subs = sorted(
        p.stem for p in (checkout / "subscriptions").glob("*.toml") if "email =" in p.read_text()
    )
    slack_subs = sorted(
        p.stem
        for p in (checkout / "subscriptions").glob("*.toml")
        if "slack_channel =" in p.read_text()
    )
    assert email_subs and slack_subs
    n = len(email_subs) + len(slack_subs)  # outbox_dir in digestbot.toml: the outbox is chosen
    assert f"{n} digests went to the outbox (" in first.stdout
    for sid in email_subs:
        (eml,) = (checkout / "outbox" / sid).glob("*.eml")
        msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
        for header in ("Subject", "From", "To", "Date", "Message-ID"):
            assert msg[header], f"{eml} has no {header}"
        assert msg["Message-ID"] == f"<{eml.stem}@localhost>"
        assert msg.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
        assert f"{sid}: sent " in first.stdout
    for sid in slack_subs:
        (payload,) = (checkout / "outbox" / sid).glob("*.json")
        data = json.loads(payload.read_text())
        assert data["text"] and data["blocks"][0]["type"] == "header"
        assert data["metadata"]["event_payload"]["digest_id"] == payload.stem

    second = digestbot(checkout, "run", "--once")
    assert second.returncode == 0, second.stderr
    assert "fetched 1 source: 0 new, 0 updated, 28 unchanged" in second.stdout
    for sid in email_subs + slack_subs:
        assert f"0 new entries for {sid}" in second.stdout
        assert len(list((checkout / "outbox" / sid).iterdir())) == 1


def test_a_broken_subscriber_is_reported_and_the_others_are_served(checkout: Path) -> None:
    (checkout / "subscriptions" / "zed.toml").write_text(
        'name = "Zed"\nschedule = "0 25 * * *"\n[interests]\nkeywords = "diffusion"\n'
    )
    check = digestbot(checkout, "check")
    assert check.returncode == 1
    path = Path("subscriptions") / "zed.toml"
    assert (
        f'{path}: email: no delivery address; give email = "…", slack_channel = "#…", '
        'slack_webhook_env = "VAR" or slack_user = "T…:U…"' in check.stdout
    )
    assert f"{path}: schedule: '0 25 * * *' is not a valid cron line" in check.stdout
    assert (
        f'{path}: interests.keywords: is a string, not a list; write keywords = ["diffusion"]'
        in check.stdout
    )

    run = digestbot(checkout, "run", "--once")
    assert run.returncode == 1  # a problem the user must fix ...
    assert "alice: sent " in run.stdout and "bob: sent " in run.stdout  # ... and the others served
    assert f"warning: {path}: email: no delivery address" in run.stderr
    assert not (checkout / "outbox" / "zed").exists()


def test_check_passes_on_the_bundled_example(checkout: Path) -> None:
    result = digestbot(checkout, "check")
    assert result.returncode == 0, result.stdout
    assert result.stdout.strip() == "No problems: 1 source, 3 subscribers."


def test_match_prints_the_json_score_py_reads(checkout: Path) -> None:
    result = digestbot(checkout, "match", "--entries", "examples/papers.xml", "--json", "--all")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [s["id"] for s in out["subscribers"]] == ["alice", "bob", "carol"]
    for sub in out["subscribers"]:
        assert len(sub["entries"]) == 28
        followed = ["by an author you follow" in e["why"] for e in sub["entries"]]
        assert followed == sorted(followed, reverse=True)  # a followed author's papers first
        rest = [e["score"] for e in sub["entries"] if "by an author you follow" not in e["why"]]
        assert rest == sorted(rest, reverse=True)  # then best first
        assert {"id", "score", "selected", "why"} <= set(sub["entries"][0])
    alice = out["subscribers"][0]["entries"]
    assert any(e["selected"] for e in alice)
    selected_only = json.loads(
        digestbot(checkout, "match", "--entries", "examples/papers.xml", "--json").stdout
    )
    assert all(e["selected"] for s in selected_only["subscribers"] for e in s["entries"])
    assert not (checkout / "digestbot.db").exists()  # match touches no database
