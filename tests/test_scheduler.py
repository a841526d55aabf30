"""The scheduler: its jobs' configuration, re-reading subscriptions, catch-up after downtime, SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from _project import REPO, write_project
from apscheduler.triggers.interval import IntervalTrigger
from peers import SmtpPeer, SmtpScript, free_port

from bot.config import load_settings
from bot.delivery import RetryPolicy
from bot.errors import StoreError
from bot.scheduler import DIGEST_GRACE, RETRY_TICK, Runner
from bot.slots import SlotTrigger
from bot.store import Store


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    config = write_project(tmp_path, 2, schedule="0 8 * * 1-5", timezone="Europe/Berlin")
    with config.open("a", encoding="utf-8") as f:
        f.write(
            '\n[[sources]]\nname = "slow"\ntype = "file"\npath = "feed.xml"\ninterval_minutes = 120\n'
        )
    r = Runner(load_settings(str(config), environ={}))
    r.scheduler.start(paused=True)
    yield r
    r.scheduler.shutdown(wait=False)
    r.store.close()


def test_jobs_coalesce_run_one_at_a_time_and_say_how_late_they_may_start(runner: Runner) -> None:
    runner.reload()
    runner.add_fetch_jobs(runner.settings.sources)
    jobs = {j.id: j for j in runner.scheduler.get_jobs()}
    assert set(jobs) == {"digest:s0000", "digest:s0001", "fetch:examples", "fetch:slow"}
    for job in jobs.values():
        assert (
            job.coalesce is True and job.max_instances == 1 and job.misfire_grace_time is not None
        )
    digest = jobs["digest:s0000"]
    assert (
        isinstance(digest.trigger, SlotTrigger)
        and digest.misfire_grace_time == DIGEST_GRACE.total_seconds()
    )
    fetch, slow = jobs["fetch:examples"].trigger, jobs["fetch:slow"].trigger
    assert isinstance(fetch, IntervalTrigger) and isinstance(slow, IntervalTrigger)
    assert fetch.interval == timedelta(minutes=30) and slow.interval == timedelta(
        minutes=120
    )  # default, own
    assert fetch.jitter and jobs["fetch:examples"].misfire_grace_time == 30 * 60
    # the weekday schedule's next fire time is a weekday 08:00 in Berlin
    nxt = digest.trigger.get_next_fire_time(
        None, datetime(2026, 11, 28, 12, tzinfo=UTC)
    )  # a Saturday
    assert nxt == datetime(2026, 11, 30, 7, tzinfo=UTC)


def test_changed_subscription_files_are_picked_up_without_a_restart(runner: Runner) -> None:
    runner.reload()
    folder = runner.folder
    (folder / "s0002.toml").write_text(
        (folder / "s0000.toml").read_text().replace('email = "reader0000', 'email = "reader0002')
    )
    (folder / "s0001.toml").write_text(
        (folder / "s0001.toml").read_text().replace("0 8 * * 1-5", "30 6 * * *")
    )
    runner.watch_job()
    assert sorted(runner.subscribers) == ["s0000", "s0001", "s0002"]
    trigger = runner.scheduler.get_job("digest:s0001").trigger
    assert isinstance(trigger, SlotTrigger) and trigger.subscriber.schedule == "30 6 * * *"
    # a file broken while editing keeps its subscriber's last good settings; a removed one goes
    (folder / "s0001.toml").write_text("schedule = [broken")
    (folder / "s0002.toml").unlink()
    runner.watch_job()
    assert sorted(runner.subscribers) == ["s0000", "s0001"]
    assert runner.subscribers["s0001"].schedule == "30 6 * * *"
    assert runner.scheduler.get_job("digest:s0002") is None
    assert [p.path for p in runner.problems] == [str(folder / "s0001.toml")]


def test_unchanged_folder_is_not_reread(runner: Runner) -> None:
    runner.reload()
    before = runner.subscribers
    runner.watch_job()
    assert runner.subscribers is before


def test_start_after_days_of_downtime_sends_one_digest_each(tmp_path: Path) -> None:
    config = write_project(tmp_path, 3, schedule="0 * * * *")  # hourly: 72 slots missed in 3 days
    settings = load_settings(str(config), environ={})
    with time_machine.travel(datetime(2026, 11, 25, 9, 5, tzinfo=UTC), tick=False) as clock:
        first = Runner(settings)
        first.reload()
        first.catch_up()
        first.store.close()
        clock.move_to(datetime(2026, 11, 28, 9, 30, tzinfo=UTC))
        second = Runner(settings)
        second.reload()
        second.catch_up()
        rows = second.store.digests_with_status("sent", "empty", "pending", "failed")
        second.store.close()
    slots = sorted({r.slot for r in rows})
    assert slots == [datetime(2026, 11, 25, 9, tzinfo=UTC), datetime(2026, 11, 28, 9, tzinfo=UTC)]
    assert len(rows) == 6


def _digestbot_run(config: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`digestbot run` (the scheduler) as its own process, in the config's folder, output kept."""
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "--config", str(config), "run"],
        cwd=config.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_sigterm_finishes_the_digest_in_flight_starts_nothing_new_and_exits_0(
    tmp_path: Path,
) -> None:
    config = write_project(tmp_path, 3)
    with SmtpPeer(SmtpScript(delay=2.0)) as smtp:
        env = {**os.environ, "PYTHONPATH": str(REPO), "DIGESTBOT_SMTP_URL": smtp.url}
        proc = _digestbot_run(config, env)
        deadline = time.monotonic() + 60
        while smtp.data_seen == 0 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.01)
        assert smtp.data_seen == 1, "the first digest never reached the SMTP server"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "finishing the digest in flight" in err.decode()
    assert len(smtp.mails) == 1 and smtp.data_seen == 1
    store = Store(f"sqlite:///{tmp_path / 'digestbot.db'}")
    rows = store.digests_with_status("sent", "pending", "failed", "empty")
    store.close()
    assert [(r.subscriber_id, r.status) for r in rows] == [("s0000", "sent")]


@pytest.mark.slow
def test_sigterm_ends_a_fetch_that_waits_out_a_retry_after(tmp_path: Path) -> None:
    """A feed host answers 503 with Retry-After: 300 (up to three times): SIGTERM during that
    wait still exits 0 at once, not after SIGKILL (120 s after SIGTERM in every deploy recipe)."""
    import threading
    from http.server import HTTPServer

    from test_sources_http import _Busy  # 503, Retry-After: 300

    _Busy.asked.clear()
    server = HTTPServer(("127.0.0.1", 0), _Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = write_project(tmp_path, 1)
    with config.open("a", encoding="utf-8") as f:
        f.write(
            f'\n[[sources]]\nname = "busy"\ntype = "rss"\n'
            f'url = "http://127.0.0.1:{server.server_address[1]}/feed.xml"\n'
        )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DIGESTBOT_SMTP_URL", None)
    proc = _digestbot_run(config, env)
    try:
        assert _Busy.asked.wait(60), "the busy feed was never asked"
        time.sleep(0.5)  # now waiting out the 300 s
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "shutting down" in err.decode()  # the busy source's line says why it stopped


def test_status_shows_next_and_last_digests_pending_failed_and_sources(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bot.cli import cli
    from bot.models import DigestItem, Entry

    config = write_project(tmp_path, 3, schedule="0 8 * * 1-5", timezone="Europe/Berlin")
    store = Store(f"sqlite:///{tmp_path / 'digestbot.db'}")
    now = datetime(2026, 11, 28, 12, tzinfo=UTC)  # a Saturday
    slot = datetime(2026, 11, 27, 7, tzinfo=UTC)
    paper = Entry(id="arxiv:2611.00001", title="Quantization \x1b[31mred\x1b[0m", published=now)
    store.upsert_entries([paper], now=now)
    sent, failed, pending = (
        store.claim(f"s000{n}", slot, [DigestItem(paper, 0.9)], "email", owner="", now=now)
        for n in range(3)
    )
    assert sent is not None and failed is not None and pending is not None
    store.mark_sent(sent.digest_id, "<x@y>", now=now)
    store.mark_failed(failed.digest_id, "SMTP refused reader0001@example.org: 550 no such user")
    store.note_attempt(pending.digest_id, "SMTP answered 451 try later")
    store.save_fetch("examples", None, error="source 'examples': cannot read it", now=now)
    store.close()
    with time_machine.travel(now, tick=False):
        result = CliRunner().invoke(
            cli, ["--config", str(config), "status"], env={"DIGESTBOT_SMTP_URL": ""}
        )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "Subscribers (3):",
        '  s0000  reader0000@example.org  "0 8 * * 1-5" Europe/Berlin  (file, active)',
        "    next digest: 2026-11-30 08:00 CET (07:00 UTC)",
        "    last digest: 2026-11-27 08:00 CET (07:00 UTC), sent 2026-11-28 12:00 UTC, 1 entry",
        "      - Quantization  [31mred [0m  [arxiv:2611.00001]",
        '  s0001  reader0001@example.org  "0 8 * * 1-5" Europe/Berlin  (file, active)',
        "    next digest: 2026-11-30 08:00 CET (07:00 UTC)",
        "    last digest: 2026-11-27 08:00 CET (07:00 UTC), failed: SMTP refused reader0001@example.org: 550 no such user",
        '  s0002  reader0002@example.org  "0 8 * * 1-5" Europe/Berlin  (file, active)',
        "    next digest: 2026-11-30 08:00 CET (07:00 UTC)",
        "    last digest: 2026-11-27 08:00 CET (07:00 UTC), pending: SMTP answered 451 try later, 1 entry",
        "      - Quantization  [31mred [0m  [arxiv:2611.00001]",
        "Pending digests (1):",
        "  s0002.20261127T0700Z  email, 1 attempt: SMTP answered 451 try later",
        "Failed digests (1):",
        "  s0001.20261127T0700Z  email, 1 attempt: SMTP refused reader0001@example.org: 550 no such user",
        "Sources (1):",
        "  examples  last fetch 2026-11-28 12:00 UTC  FAILED: source 'examples': cannot read it (last success never)",
    ]


def test_a_hanging_source_times_out_and_the_digests_still_go(tmp_path: Path) -> None:
    import socket

    config = write_project(tmp_path, 2)
    with socket.socket() as hang:  # accepts connections (the backlog) and never answers
        hang.bind(("127.0.0.1", 0))
        hang.listen(8)
        url = f"http://127.0.0.1:{hang.getsockname()[1]}/feed.xml"
        with config.open("a", encoding="utf-8") as f:
            f.write(f'\n[[sources]]\nname = "hangs"\ntype = "rss"\nurl = "{url}"\ntimeout = 1\n')
        r = Runner(load_settings(str(config), environ={}))
        r.reload()
        started = time.monotonic()
        r.catch_up()
        took = time.monotonic() - started
    states = {s.name: s for s in r.store.source_statuses()}
    sent = r.store.digests_with_status("sent")
    r.store.close()
    assert took < 15
    assert (
        "no answer within 1 s" in states["hangs"].last_error and states["examples"].last_error == ""
    )
    assert sorted(d.subscriber_id for d in sent) == ["s0000", "s0001"]


@pytest.mark.slow
def test_sighup_rereads_the_subscriptions_without_a_restart(tmp_path: Path) -> None:
    config = write_project(tmp_path, 1)
    log = tmp_path / "stderr.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "-v", "--config", str(config), "run"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            deadline = time.monotonic() + 60
            while (
                "Resumed scheduler job processing" not in log.read_text()
                and time.monotonic() < deadline
            ):
                time.sleep(0.05)
            folder = tmp_path / "subscriptions"
            (folder / "late.toml").write_text(
                (folder / "s0000.toml").read_text().replace("reader0000", "late")
            )
            proc.send_signal(signal.SIGHUP)
            hup = time.monotonic()
            while (
                "subscriber late: digests on" not in log.read_text() and time.monotonic() < hup + 30
            ):
                time.sleep(0.02)
            picked_up = time.monotonic() - hup
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    assert proc.returncode == 0, log.read_text()[-2000:]
    assert "subscriber late: digests on '0 8 * * *' in UTC" in log.read_text()
    assert picked_up < 5  # at once on SIGHUP (the folder watcher alone may take up to 10 s)


def test_the_scheduler_serves_web_subscribers_and_honours_unsubscribes(tmp_path: Path) -> None:
    config = write_project(tmp_path, 2)
    r = Runner(load_settings(str(config), environ={}))
    try:
        r.reload()
        assert sorted(r.subscribers) == ["s0000", "s0001"]
        row = r.store.request_web_subscription(
            "w-1",
            "web@example.org",
            "Web Reader",
            {"keywords": ["diffusion"]},
            "0 9 * * *",
            "UTC",
            5,
        )
        r.watch_job()
        assert "w-1" not in r.subscribers  # unconfirmed: nothing is sent to it
        r.store.set_web_status(row.id, "active")
        r.store.set_subscriber_status("s0001", "unsubscribed")
        r.watch_job()  # no file changed: the store's change alone triggers the reload
        assert sorted(r.subscribers) == ["s0000", "w-1"]
        assert r.scheduler.get_job("digest:w-1") is not None
        assert r.scheduler.get_job("digest:s0001") is None
    finally:
        r.store.close()


def _run_planned_passes(r: Runner) -> int:
    """Run the digest passes the (paused) scheduler has planned, as its worker would; how many."""
    ran = 0
    for job in r.scheduler.get_jobs():
        if job.name == "digest pass":
            job.remove()
            job.func()
            ran += 1
    return ran


def _scheduler_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        rec.getMessage()
        for rec in caplog.records
        if rec.name == "bot.scheduler" and rec.levelno >= logging.WARNING
    ]


def test_the_retry_job_is_registered_every_minute(tmp_path: Path) -> None:
    r = Runner(load_settings(str(write_project(tmp_path, 1)), environ={}))
    try:
        r.start()
        job = r.scheduler.get_job("retry")
        assert job is not None and job.coalesce is True and job.max_instances == 1
        assert isinstance(job.trigger, IntervalTrigger) and job.trigger.interval == RETRY_TICK
    finally:
        r.stop()


@pytest.mark.parametrize(
    ("down_for", "retries"),
    [(1, [2]), (60, [2, 6, 14, 29, 44, 59, 74])],  # back after a minute; after an hour
)
def test_a_digest_left_pending_by_a_server_down_at_its_slot_goes_out_at_the_next_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, down_for: int, retries: list[int]
) -> None:
    """SMTP down at 08:00: the digests wait minutes, not a day; a server that stays down is tried
    after 2, 4, 8, then every 15 minutes, one line each time; nothing is sent twice."""
    config = write_project(tmp_path, 2, schedule="0 8 * * *")
    port = free_port()
    env = {"DIGESTBOT_SMTP_URL": f"smtp://127.0.0.1:{port}"}
    r = Runner(load_settings(str(config), environ=env))
    r.send_retry = RetryPolicy(attempts=2, base=0.0, cap=0.0)  # a pass's own tries, no pauses
    slot = datetime(2026, 11, 25, 8, tzinfo=UTC)
    today = {"s0000.20261125T0800Z", "s0001.20261125T0800Z"}
    with time_machine.travel(slot - timedelta(hours=1), tick=False) as clock, ExitStack() as up:
        r.scheduler.start(paused=True)
        try:
            r.reload()
            with SmtpPeer(port=port) as smtp:
                r.catch_up()  # 07:00: yesterday's digests
            assert len(smtp.mails) == 2
            caplog.set_level(logging.INFO, logger="bot.scheduler")
            clock.move_to(slot + timedelta(seconds=1))  # 08:00: the server is down
            r.digest_job("s0000")
            r.digest_job("s0001")
            assert _run_planned_passes(r) == 1
            (line,) = _scheduler_lines(caplog)
            assert line.startswith(
                "2 digests wait (s0000.20261125T0800Z, s0001.20261125T0800Z): cannot connect to SMTP"
            ) and line.endswith("; tried again at 2026-11-25 08:02 UTC"), line
            ran, sent_at, back = [], {}, None
            for minute in range(1, 120):
                clock.move_to(slot + timedelta(minutes=minute, seconds=1))
                if minute == down_for:
                    back = up.enter_context(SmtpPeer(port=port))  # the server is back
                r.retry_job()
                if _run_planned_passes(r):
                    ran.append(minute)
                for m in back.mails if back else []:
                    sent_at.setdefault(m.digest, minute)
            assert ran == retries
            assert sent_at == dict.fromkeys(today, retries[-1])
            assert back is not None and len(back.mails) == 2, "nothing is sent twice"
            assert len(_scheduler_lines(caplog)) == len(retries), "one line per pass that left some"
            rows = r.store.digests_with_status("sent", "pending", "failed", "empty")
            assert {d.id for d in rows if d.slot == slot and d.status == "sent"} == today
            assert len(rows) == 4
        finally:
            r.scheduler.shutdown(wait=False)
            r.store.close()


def test_a_pass_the_store_fails_at_the_slot_keeps_its_marks_and_sends_once_it_recovers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A weekly digest whose 08:00 pass meets a database blip goes out minutes later, once."""
    config = write_project(tmp_path, 1, schedule="0 8 * * 1")  # Mondays 08:00 UTC
    r = Runner(load_settings(str(config), environ={}))
    slot = datetime(2026, 11, 30, 8, tzinfo=UTC)  # a Monday
    with time_machine.travel(slot - timedelta(hours=1), tick=False) as clock:
        r.scheduler.start(paused=True)
        try:
            r.reload()
            for spec in r.settings.sources:
                r.fetch_job(spec)
            real = r.store.last_slots
            down = "cannot reach the database (server closed the connection)"

            def blip() -> dict[str, datetime]:  # the database is unreachable until 08:05
                if datetime.now(UTC) < slot + timedelta(minutes=5):
                    raise StoreError(down)
                return real()

            monkeypatch.setattr(r.store, "last_slots", blip)
            caplog.set_level(logging.INFO, logger="bot.scheduler")
            clock.move_to(slot + timedelta(seconds=1))
            r.digest_job("s0000")
            assert _run_planned_passes(r) == 1
            assert r.store.digests_with_status("sent", "pending", "failed", "empty") == []
            ran = []
            for minute in range(1, 60):
                clock.move_to(slot + timedelta(minutes=minute, seconds=1))
                r.retry_job()
                if _run_planned_passes(r):
                    ran.append(minute)
            assert ran == [2, 6]
            assert _scheduler_lines(caplog) == [
                f"digest pass (1 due): {down}; tried again at 2026-11-30 08:02 UTC",
                f"digest pass (1 due, retry of pending digests): {down}; tried again at 2026-11-30 08:06 UTC",
            ]
            rows = r.store.digests_with_status("sent", "pending", "failed", "empty")
            assert [(d.id, d.status) for d in rows] == [("s0000.20261130T0800Z", "sent")]
            assert len(list((tmp_path / "outbox").rglob("*.eml"))) == 1
        finally:
            r.scheduler.shutdown(wait=False)
            r.store.close()
