"""Two `digestbot run --once` processes started together never send one slot's digest twice.

The (subscriber, slot) key in the ledger decides, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from _peers import REPO, SmtpPeer, SmtpScript, pg_schema_url, write_project

from bot.store import Store

READERS = 60


def race(config: Path, smtp: SmtpPeer) -> list[str]:
    """Start two `run --once` at the same moment; return both outputs."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "DIGESTBOT_SMTP_URL": smtp.url}
    cmd = [sys.executable, "-m", "bot", "--config", str(config), "run", "--once"]
    procs = [subprocess.Popen(cmd, cwd=config.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    done = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, done, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
    return [out.decode() for out, _ in done]


def check(outs: list[str], smtp: SmtpPeer, url: str) -> None:
    per_reader = Counter(m.to[0] for m in smtp.mails)
    assert len(per_reader) == READERS and set(per_reader.values()) == {1}
    # each subscriber's "sent" line comes from exactly one of the two processes
    sent = Counter(line.split(":")[0] for out in outs for line in out.splitlines() if ": sent " in line)
    assert len(sent) == READERS and set(sent.values()) == {1}
    print("sent by each process:", [out.count(": sent ") for out in outs],
          "slots lost to the other:", [out.count("another run claimed this slot") for out in outs])
    store = Store(url)
    try:
        rows = store.digests_with_status("sent", "pending", "failed", "empty")
        assert len(rows) == READERS and {r.status for r in rows} == {"sent"}
    finally:
        store.close()


@pytest.mark.slow
def test_two_processes_on_sqlite_send_each_digest_once(tmp_path: Path) -> None:
    config = write_project(tmp_path, READERS)
    with SmtpPeer(SmtpScript(delay=0.02)) as smtp:
        outs = race(config, smtp)
    check(outs, smtp, f"sqlite:///{tmp_path / 'digestbot.db'}")


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_on_postgresql_send_each_digest_once(tmp_path: Path) -> None:
    with pg_schema_url() as (url, _schema, _admin), SmtpPeer(SmtpScript(delay=0.02)) as smtp:
        config = write_project(tmp_path, READERS, database_url=url)
        outs = race(config, smtp)
        check(outs, smtp, url)


@pytest.mark.slow
def test_two_schedulers_started_together_send_each_digest_once(tmp_path: Path) -> None:
    import signal
    import time

    config = write_project(tmp_path, READERS)
    with SmtpPeer(SmtpScript(delay=0.02)) as smtp:
        env = {**os.environ, "PYTHONPATH": str(REPO), "DIGESTBOT_SMTP_URL": smtp.url}
        cmd = [sys.executable, "-m", "bot", "-v", "--config", str(config), "run"]
        procs = [subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(2)]
        deadline = time.monotonic() + 120
        while smtp.count() < READERS and time.monotonic() < deadline and all(p.poll() is None for p in procs):
            time.sleep(0.05)
        time.sleep(0.5)  # anything sent twice would arrive now
        errs = []
        for p in procs:
            p.send_signal(signal.SIGTERM)
            _, err = p.communicate(timeout=60)
            errs.append(err.decode())
            assert p.returncode == 0, err.decode()[-2000:]
    per_reader = Counter(m.to[0] for m in smtp.mails)
    assert len(per_reader) == READERS and set(per_reader.values()) == {1}
    print("sent by each scheduler:", [e.count(": sent ") for e in errs])


@pytest.mark.postgres
def test_postgresql_fetch_state_written_by_another_process_meanwhile_is_updated(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import event, text

    from bot.sources import FetchState

    with pg_schema_url() as (url, schema, admin):
        store = Store(url)
        fired: list[str] = []

        def other_process_first(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
            if statement.startswith("INSERT INTO source_state") and not fired:
                fired.append(statement)
                with admin.begin() as a:  # commits the same key before our INSERT runs
                    a.execute(text(f"INSERT INTO {schema}.source_state (name, etag, last_modified, cursor, last_error, last_counts) "
                                   "VALUES ('feed', 'theirs', '', '{}', '', '{}')"))

        event.listen(store.engine, "before_cursor_execute", other_process_first)
        store.save_fetch("feed", FetchState("ours", "", {}), now=datetime.now(UTC))
        etag = store.get_state("feed").etag
        store.close()
    assert fired and etag == "ours"
