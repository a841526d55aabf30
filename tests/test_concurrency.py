"""Two `digestbot run --once` processes (or two schedulers) racing for the same slots never send one twice.

The (subscriber, slot) key in the ledger decides, on SQLite and on PostgreSQL. The race is made
to happen, not hoped for: each process waits at a barrier before its first claim (tests/_race.py)
until the other has planned too, so both claim every slot, and the test checks that for each
slot one process won and the other saw it taken.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from _project import REPO, write_project
from peers import SmtpPeer, pg_schema, wait_for

from bot.store import Store

READERS = 60
RACE = Path(__file__).resolve().parent / "_race.py"


def start(
    config: Path, gate: Path, env: dict[str, str], *command: str
) -> list[subprocess.Popen[bytes]]:
    """Start two digestbot processes that meet at the barrier in `gate` before their first claim."""
    gate.mkdir()
    cmd = [sys.executable, str(RACE), str(gate), "2", "--config", str(config), *command]
    env = {**os.environ, "PYTHONPATH": str(REPO), **env}
    return [
        subprocess.Popen(
            cmd, cwd=config.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(2)
    ]


def claims(gate: Path, proc: subprocess.Popen[bytes]) -> dict[str, set[str]]:
    """What one process's claims came to: {"won": subscribers, "lost": subscribers}."""
    path = gate / f"{proc.pid}.claims"
    lines = (
        path.read_text(encoding="utf-8").split("\n")[:-1] if path.exists() else []
    )  # whole lines only
    out: dict[str, set[str]] = {"won": set(), "lost": set()}
    for line in lines:
        result, sub = line.split()
        out[result].add(sub)
    return out


def check_the_race(gate: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    """Both processes raced for every slot: each won some, saw the others taken, and no slot twice."""
    assert len(list(gate.glob("*.ready"))) == 2, "both processes reached their first claim"
    first, second = (claims(gate, p) for p in procs)
    everyone = {f"s{n:04d}" for n in range(READERS)}
    for mine, theirs in ((first, second), (second, first)):
        assert mine["won"] | mine["lost"] == everyone, "each process claimed every slot"
        assert mine["lost"] == theirs["won"], "a slot lost is a slot the other process won"
    print("slots won by each process:", len(first["won"]), len(second["won"]))


def race_run_once(config: Path, tmp_path: Path, smtp: SmtpPeer) -> None:
    """Two `run --once` started together; every reader gets one mail, each `sent` once."""
    gate = tmp_path / "gate"
    procs = start(config, gate, {"DIGESTBOT_SMTP_URL": smtp.url}, "run", "--once")
    done = [p.communicate(timeout=240) for p in procs]
    for p, (_, err) in zip(procs, done, strict=True):
        assert p.returncode == 0, err.decode()[-2000:]
    outs = [out.decode() for out, _ in done]
    check_the_race(gate, procs)
    per_reader = Counter(m.to[0] for m in smtp.mails)
    assert len(per_reader) == READERS and set(per_reader.values()) == {1}
    # each subscriber's "sent" line comes from exactly one of the two processes
    sent = Counter(
        line.split(":")[0] for out in outs for line in out.splitlines() if ": sent " in line
    )
    assert len(sent) == READERS and set(sent.values()) == {1}
    lost = Counter(
        line.split(":")[0]
        for out in outs
        for line in out.splitlines()
        if line.endswith(": skipped (another run claimed this slot)")
    )
    assert lost == Counter({sub: 1 for sub in sent}), "the loser of each slot says so"


def ledger_all_sent(url: str) -> None:
    store = Store(url)
    try:
        rows = store.digests_with_status("sent", "pending", "failed", "empty")
        assert len(rows) == READERS and {r.status for r in rows} == {"sent"}
    finally:
        store.close()


@pytest.mark.slow
def test_two_processes_on_sqlite_send_each_digest_once(tmp_path: Path) -> None:
    config = write_project(tmp_path, READERS)
    with SmtpPeer() as smtp:
        race_run_once(config, tmp_path, smtp)
    ledger_all_sent(f"sqlite:///{tmp_path / 'digestbot.db'}")


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_on_postgresql_send_each_digest_once(tmp_path: Path) -> None:
    with pg_schema() as pg, SmtpPeer() as smtp:
        config = write_project(tmp_path, READERS, database_url=pg.url)
        race_run_once(config, tmp_path, smtp)
        ledger_all_sent(pg.url)


@pytest.mark.slow
def test_two_schedulers_started_together_send_each_digest_once(tmp_path: Path) -> None:
    config = write_project(tmp_path, READERS)
    gate = tmp_path / "gate"
    with SmtpPeer() as smtp:
        procs = start(config, gate, {"DIGESTBOT_SMTP_URL": smtp.url}, "-v", "run")
        try:
            wait_for(
                lambda: (
                    sum(len(c) for p in procs for c in claims(gate, p).values()) >= 2 * READERS
                    or any(p.poll() is not None for p in procs)
                ),
                120,
                "both schedulers to claim every slot",
            )
            wait_for(
                lambda: smtp.count() >= READERS,
                60,
                f"{READERS} mails",
                lambda: f"got {smtp.count()}",
            )
        finally:
            for p in procs:
                p.send_signal(signal.SIGTERM)
            done = [p.communicate(timeout=60) for p in procs]
        for p, (_, err) in zip(procs, done, strict=True):
            assert p.returncode == 0, err.decode()[-2000:]
    check_the_race(gate, procs)
    per_reader = Counter(m.to[0] for m in smtp.mails)
    assert len(per_reader) == READERS and set(per_reader.values()) == {1}


@pytest.mark.postgres
def test_postgresql_fetch_state_written_by_another_process_meanwhile_is_updated(
    tmp_path: Path,
) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import event, text

    from bot.sources import FetchState

    with pg_schema() as (url, schema, admin):
        store = Store(url)
        fired: list[str] = []

        def other_process_first(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
            if statement.startswith("INSERT INTO source_state") and not fired:
                fired.append(statement)
                with admin.begin() as a:  # commits the same key before our INSERT runs
                    a.execute(
                        text(
                            f"INSERT INTO {schema}.source_state (name, etag, last_modified, cursor, last_error, last_counts) "
                            "VALUES ('feed', 'theirs', '', '{}', '', '{}')"
                        )
                    )

        event.listen(store.engine, "before_cursor_execute", other_process_first)
        store.save_fetch("feed", FetchState("ours", "", {}), now=datetime.now(UTC))
        etag = store.get_state("feed").etag
        store.close()
    assert fired and etag == "ours"
