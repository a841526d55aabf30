"""The ledger's SQLite durability setting: NORMAL by default, FULL on request; a commit outlives a killed process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from bot.config import load_settings
from bot.errors import ProblemsFound, StoreError
from bot.models import DigestItem, Entry
from bot.store import Store

NOW = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
SLOT = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)


def config(tmp_path: Path, body: str) -> str:
    path = tmp_path / "digestbot.toml"
    path.write_text(body)
    return str(path)


def synchronous(store: Store) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text("PRAGMA synchronous")).scalar_one())


def test_the_setting_defaults_to_normal_and_takes_full_in_any_case(tmp_path: Path) -> None:
    assert load_settings(config(tmp_path, ""), {}).database_sqlite_synchronous == "NORMAL"
    assert (
        load_settings(
            config(tmp_path, 'database_sqlite_synchronous = "full"'), {}
        ).database_sqlite_synchronous
        == "FULL"
    )


@pytest.mark.parametrize("value", ['"OFF"', "2"])
def test_a_bad_setting_names_the_key_and_the_choices(tmp_path: Path, value: str) -> None:
    with pytest.raises(ProblemsFound) as err:
        load_settings(config(tmp_path, f"database_sqlite_synchronous = {value}"), {})
    [problem] = err.value.problems
    assert "database_sqlite_synchronous" in str(problem) and '"FULL"' in str(problem)


def test_the_store_runs_sqlite_with_the_mode_asked_for(tmp_path: Path) -> None:
    normal = Store(f"sqlite:///{tmp_path / 'n.db'}")
    full = Store(f"sqlite:///{tmp_path / 'f.db'}", "full")
    try:
        assert synchronous(normal) == 1  # NORMAL
        assert synchronous(full) == 2  # FULL
    finally:
        normal.close()
        full.close()
    with pytest.raises(StoreError, match="database_sqlite_synchronous"):
        Store(f"sqlite:///{tmp_path / 'x.db'}", "OFF")


def test_a_claim_committed_with_normal_outlives_the_process_killed_right_after(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    child = textwrap.dedent(f"""
        import os, signal
        from datetime import datetime, UTC
        from bot.models import DigestItem, Entry
        from bot.store import Store
        store = Store({url!r})
        entry = Entry(id="arxiv:2611.00001", title="Paper", published=datetime(2026, 11, 28, 6, tzinfo=UTC))
        store.upsert_entries([entry], datetime(2026, 11, 28, 8, tzinfo=UTC))
        store.claim("alice", datetime(2026, 11, 28, 7, tzinfo=UTC), [DigestItem(entry, 0.5)], "email", owner="dead:1")
        os.kill(os.getpid(), signal.SIGKILL)  # no close, no checkpoint: the WAL as the commit left it
    """)
    done = subprocess.run(
        [sys.executable, "-c", child],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -9, done.stderr.decode()
    store = Store(url)
    try:
        [row] = store.digests_with_status("pending")
        assert (row.subscriber_id, row.slot, row.owner) == ("alice", SLOT, "dead:1")
        assert [i.entry.id for i in store.digest_items(row.id)] == ["arxiv:2611.00001"]
    finally:
        store.close()


def test_a_claim_whose_entries_were_all_taken_meanwhile_is_empty(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'e.db'}")
    entry = Entry(id="arxiv:2611.00002", title="Paper", published=NOW - timedelta(hours=2))
    store.upsert_entries([entry], NOW)
    try:
        assert store.claim("alice", SLOT, [DigestItem(entry, 0.5)], "email", now=NOW) is not None
        later = SLOT + timedelta(days=1)
        claimed = store.claim("alice", later, [DigestItem(entry, 0.5)], "email", now=NOW)
        assert claimed is not None and claimed.items == ()
        assert [r.status for r in store.history("alice")] == ["empty", "pending"]
        assert store.claim("alice", later, [], "email", now=NOW) is None  # the slot is taken
    finally:
        store.close()
