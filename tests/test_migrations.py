"""Schema migrations (bot/store/migrations) on SQLite and PostgreSQL: revision 0001 is exactly the
schema digestbot made before migrations, such a database is upgraded with every row kept, a newer
one is refused, processes starting together both succeed, and the scripts ship in the wheel."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, Float, MetaData, create_engine, inspect, select, text
from sqlalchemy.engine import Connection, Engine, make_url

from bot.errors import StoreError
from bot.models import Entry
from bot.store import Store, UTCDateTime, _schema, digest_id, metadata, migrate, migrations
from bot.store.migrations.__main__ import main as revision_cli

ROOT = Path(__file__).resolve().parent.parent
# The DDL digestbot's create_all emitted before migrations, frozen.
FROZEN = Path(__file__).resolve().parent / "data" / "migrations"
T0 = datetime(2026, 11, 28, 7, 0)  # naive UTC, as the store writes datetimes
HEAD = migrations.head()
NEXT, AFTER_NEXT = f"{int(HEAD) + 1:04d}", f"{int(HEAD) + 2:04d}"  # what the helper numbers next
NEW_TABLES: dict[str, list[Any]] = {
    "bounces": [],
    "suspensions": [],
    "slack_bots": [],
    "slack_installations": [],
    "slack_members": [],
    "slack_oauth_states": [],
}  # revisions after 0001 add these, empty


@pytest.fixture
def engine(backend_url: str) -> Iterator[Engine]:
    e = create_engine(backend_url)
    yield e
    e.dispose()


def legacy_database(engine: Engine, *, without: str = "") -> None:
    """A database as digestbot made it before migrations: its create_all, then schema_version 1.

    `without`: a line of the frozen DDL to leave out (a column an early development version lacked).
    """
    ddl = (FROZEN / f"schema_v1.{engine.dialect.name}.sql").read_text()
    if without:
        assert without in ddl
        ddl = ddl.replace(without + "\n", "")
    ddl = "\n".join(line for line in ddl.splitlines() if not line.startswith("--"))
    statements = [s for s in ddl.split(";\n") if s.strip()]
    assert len(statements) == 15  # 10 tables, 5 indexes
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
        conn.exec_driver_sql("INSERT INTO schema_version (version) VALUES (1)")


def fill(engine: Engine) -> None:
    """Rows in every table, NULLs and non-ASCII text included (values in the frozen DDL's order)."""
    later = T0 + timedelta(minutes=3)
    a, w = "alice.20261128T0700Z", "web-7.20261128T0700Z"
    e1, e2 = "arxiv:2611.00001", "arxiv:2611.00002"
    rows: dict[str, list[tuple[Any, ...]]] = {
        "entries": [
            (
                f"arxiv:2611.0000{n}",
                f"Paper {n} — Schrödinger",
                "s" * n,
                f"https://arxiv.org/abs/2611.0000{n}",
                '["A. Author", "B. Böhm"]',
                T0 - timedelta(hours=n),
                "arxiv",
                '["cs.CL"]',
                '{"upvotes": 12}',
                T0,
                later,
            )
            for n in (1, 2, 3)
        ],
        "source_state": [
            (
                "arxiv",
                '"abc"',
                "Sat, 28 Nov 2026 07:00:00 GMT",
                '{"day": "2026-11-28"}',
                T0,
                T0,
                "",
                '{"new": 3}',
            ),
            ("blog", "", "", "{}", T0, None, "timed out", "{}"),
        ],
        "digests": [
            (a, "alice", T0, "sent", "email", T0, later, 1, f"<{a}@example.org>", "", 2, "", None),
            (
                w,
                "web-7",
                T0,
                "pending",
                "slack",
                T0,
                None,
                2,
                "",
                "451 try later",
                0,
                "host:42",
                later,
            ),
        ],
        "deliveries": [
            ("alice", e1, a, 0, 0.8125, '["keyword: llm"]', "NLP"),
            ("alice", e2, a, 1, 0.5, "[]", ""),
            ("web-7", e1, w, 0, 0.25, "[]", ""),
        ],
        "feedback": [("alice", e1, 1, later), ("alice", e2, -1, later)],
        "web_subscribers": [
            (
                "web-7",
                "Eve@Example.org",
                "eve@example.org",
                "Ève",
                '{"keywords": ["llm"]}',
                "0 8 * * *",
                "Europe/Paris",
                10,
                "active",
                T0,
                later,
                T0,
                later,
            ),
            (
                "web-8",
                "bob@example.org",
                "bob@example.org",
                "",
                "{}",
                "0 8 * * 1",
                "UTC",
                5,
                "unconfirmed",
                T0,
                T0,
                T0,
                None,
            ),
        ],
        "subscriber_status": [("carol", "unsubscribed", later)],
        "used_tokens": [("9f2c", "confirm", later)],
        "rate_events": [("client:ab12", T0), ("client:ab12", later)],  # ids from the sequence
    }
    tables = MetaData()
    tables.reflect(engine)
    with engine.begin() as conn:
        for name, values in rows.items():  # (in an order the foreign keys accept)
            table = tables.tables[name]
            columns = [c.name for c in table.c if not (name == "rate_events" and c.name == "id")]
            conn.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in values])


def dump(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table but alembic_version, in a fixed order."""
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as conn:
        return {
            name: sorted((tuple(r) for r in conn.execute(select(t))), key=repr)
            for name, t in tables.tables.items()
            if name != "alembic_version"
        }


def with_0002(rows: dict[str, list[tuple[Any, ...]]]) -> dict[str, list[tuple[Any, ...]]]:
    """`rows` dumped at revision 0001 as revision 0002 keeps them: a mark has no address (NULL)."""
    marks = [(*row, None) for row in rows["subscriber_status"]]
    return {**rows, "subscriber_status": marks}


def revision_of(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return []
        return [tuple(r) for r in conn.execute(text("SELECT version_num FROM alembic_version"))]


def differences(conn: Connection) -> list[Any]:
    opts = {"compare_type": True, "compare_server_default": True}
    ctx = MigrationContext.configure(conn, opts=opts)
    return list(compare_metadata(ctx, metadata))


def test_upgrade_gives_exactly_the_tables_of_the_metadata(backend_url: str, engine: Engine) -> None:
    Store(backend_url).close()
    with engine.connect() as conn:
        assert differences(conn) == []
    assert revision_of(engine) == [(HEAD,)]


def structure(engine: Engine) -> list[tuple[Any, ...]]:
    """The schema as the database itself describes it: every table, column, index and constraint."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            found = conn.exec_driver_sql(
                "SELECT type, name, sql FROM sqlite_master WHERE name != 'alembic_version' "
                "AND name NOT LIKE 'sqlite_autoindex_alembic%' ORDER BY name"
            )
            return [(kind, name, " ".join((sql or "").split())) for kind, name, sql in found]
        columns = conn.execute(
            text(
                "SELECT table_name, column_name, ordinal_position, data_type, "
                "character_maximum_length, is_nullable, column_default FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name != 'alembic_version' "
                "ORDER BY 1, 3"
            )
        ).all()
        indexes = conn.execute(
            text(
                "SELECT tablename, indexname, indexdef FROM pg_indexes "
                "WHERE schemaname = current_schema() AND tablename != 'alembic_version' "
                "ORDER BY 2"
            )
        ).all()
        constraints = conn.execute(
            text(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE connamespace = current_schema()::regnamespace "
                "AND conrelid::regclass::text != 'alembic_version' ORDER BY 2"
            )
        ).all()
        return [tuple(r) for r in [*columns, *indexes, *constraints]]


def test_revision_0001_is_exactly_the_schema_made_before_migrations(
    engine: Engine, backend_url: str
) -> None:
    legacy_database(engine)
    before = structure(engine)
    with engine.begin() as conn:  # empty the database, then let revision 0001 make it
        for name in inspect(conn).get_table_names():
            cascade = " CASCADE" if engine.dialect.name == "postgresql" else ""
            conn.exec_driver_sql(f"DROP TABLE {name}{cascade}")
    assert structure(engine) == []
    with engine.begin() as conn:  # revision 0001 alone (later ones add tables)
        command.upgrade(migrations.alembic_config(connection=conn), "0001")
    assert structure(engine) == before
    assert len(before) > 20
    done = migrate(backend_url)  # and on to the newest
    assert (done.before, done.after, done.legacy) == ("0001", HEAD, False)


def test_revision_0002_keeps_every_mark_without_an_address_and_the_roster_ties_it(
    engine: Engine, backend_url: str, tmp_path: Path
) -> None:
    """A mark made at 0001 applies to whatever address the file has (as before 0002), and the
    first reading of the roster ties it to that address: a later address starts fresh."""
    from bot.config import Settings
    from bot.roster import load_roster

    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(connection=conn), "0001")
        conn.execute(
            text("INSERT INTO subscriber_status VALUES ('carol', 'unsubscribed', :t)"), {"t": T0}
        )
    folder = tmp_path / "subscriptions"
    folder.mkdir()
    carol = '[interests]\nkeywords = ["llm"]\n'
    (folder / "carol.toml").write_text('email = "Carol@Example.org"\n' + carol)
    store = Store(backend_url)  # upgrades to 0002
    try:
        settings = Settings(subscriptions_dir=folder, database_url=backend_url)
        (mark,) = store.subscriber_marks().values()
        assert (mark.subscriber_id, mark.status, mark.address) == ("carol", "unsubscribed", None)
        assert mark.updated_at == T0.replace(tzinfo=UTC)
        assert load_roster(settings, store) == ([], [])  # still unsubscribed ...
        assert store.subscriber_marks()["carol"].address == "Carol@Example.org"  # ... and tied
        (folder / "carol.toml").write_text('email = "dan@example.org"\n' + carol)
        assert [s.id for s in load_roster(settings, store)[0]] == ["carol"]  # a new person
        assert store.subscriber_marks()["carol"].address == "Carol@Example.org"
    finally:
        store.close()


@pytest.mark.parametrize("how", ["start", "digestbot migrate"])
def test_a_database_made_before_migrations_keeps_every_row(
    engine: Engine, backend_url: str, how: str
) -> None:
    legacy_database(engine)
    fill(engine)
    rows = dump(engine)
    assert all(rows.values()), "every table has rows"
    assert revision_of(engine) == []
    if how == "start":
        store = Store(backend_url)
    else:
        done = migrate(backend_url)
        assert (done.before, done.after, done.legacy, done.changed) == (None, HEAD, True, True)
        assert str(done).endswith(
            f"stamped it at revision 0001, every row kept, then upgraded it to {HEAD}"
        )
        again = migrate(backend_url)
        assert str(again).endswith(
            f"at revision {HEAD}, the newest this digestbot knows; nothing to do"
        )
        store = Store(backend_url)
    try:
        assert revision_of(engine) == [(HEAD,)]
        assert dump(engine) == {**with_0002(rows), **NEW_TABLES}
        # and digestbot reads and writes them as before
        got = store.get_entries(["arxiv:2611.00001"])["arxiv:2611.00001"]
        assert got.authors == ("A. Author", "B. Böhm")
        sent = store.get_digest("alice.20261128T0700Z")
        assert sent is not None and sent.sent_at == datetime(2026, 11, 28, 7, 3, tzinfo=UTC)
        assert store.delivered(["alice"]) == {"alice": {"arxiv:2611.00001", "arxiv:2611.00002"}}
        assert [v for _, v in store.feedback_for(["alice"])["alice"]] == [1, -1]
        web = store.web_subscriber_by_email("EVE@example.org")
        assert web is not None and web.name == "Ève"
        assert store.subscriber_statuses() == {"carol": "unsubscribed"}
        assert store.subscriber_marks()["carol"].address is None  # 0002: any address, as before
        assert not store.use_token("9f2c", "confirm")  # still used
        at = datetime(2026, 11, 28, 8, tzinfo=UTC)
        assert store.hit_rate("client:ab12", timedelta(days=1), 5, at)  # a new id from the sequence
        now = datetime(2026, 11, 29, 7, tzinfo=UTC)
        assert store.upsert_entries([Entry(id="arxiv:2611.00004", title="New")], now) == (1, 0, 0)
        assert store.claim("alice", now, [], "email", now=now) is not None
        assert store.get_digest(digest_id("alice", now)) is not None
    finally:
        store.close()


def test_a_newer_revision_is_refused_with_the_fix(backend_url: str, engine: Engine) -> None:
    Store(backend_url).close()
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    refusal = (
        r"is at schema revision 0999, which this digestbot .* does not know: a newer "
        r"digestbot upgraded it; upgrade digestbot"
    )
    for opening in (
        lambda: Store(backend_url),
        lambda: migrate(backend_url),
        lambda: migrate(backend_url, sql=True),
    ):
        with pytest.raises(StoreError, match=refusal):
            opening()
    assert revision_of(engine) == [("0999",)]


def test_a_database_made_before_migrations_by_a_newer_digestbot_is_refused(
    backend_url: str, engine: Engine
) -> None:
    legacy_database(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE schema_version SET version = 2"))
    refusal = "has schema version 2, newer than this digestbot's 1; upgrade digestbot"
    with pytest.raises(StoreError, match=refusal):
        Store(backend_url)
    assert revision_of(engine) == []


def test_an_early_development_database_missing_a_column_is_refused_untouched(
    backend_url: str, engine: Engine
) -> None:
    column = "\towner VARCHAR(200) NOT NULL,"
    legacy_database(engine, without=column)
    fill_ok = dump(engine)
    with pytest.raises(
        StoreError,
        match=r"made by an early development version of digestbot: it lacks "
        r"digests\.owner; nothing was changed",
    ):
        Store(backend_url)
    assert revision_of(engine) == []
    assert dump(engine) == fill_ok


def test_sql_prints_the_upgrade_and_changes_nothing(backend_url: str, engine: Engine) -> None:
    planned = migrate(backend_url, sql=True)
    if engine.dialect.name == "sqlite":
        assert not Path(engine.url.database or "").exists()  # not even an empty file
    assert str(planned).endswith(f"would create the tables at revision {HEAD}")
    assert planned.sql is not None and "CREATE TABLE entries" in planned.sql
    assert revision_of(engine) == [] and structure(engine) == []
    # the printed SQL is what a DBA would run by hand: it makes the same database
    if engine.dialect.name == "sqlite":
        with closing(sqlite3.connect(engine.url.database or "")) as raw:
            raw.executescript(planned.sql)
    else:
        with psycopg.connect(backend_url.replace("+psycopg", ""), autocommit=True) as pg:
            pg.execute(planned.sql)  # type: ignore[call-overload]
    assert revision_of(engine) == [(HEAD,)]
    with engine.connect() as conn:
        assert differences(conn) == []
    assert not migrate(backend_url).changed


def test_sql_for_a_database_made_before_migrations_only_stamps_it(
    backend_url: str, engine: Engine
) -> None:
    legacy_database(engine)
    planned = migrate(backend_url, sql=True)
    assert planned.legacy and planned.sql is not None
    assert "INSERT INTO alembic_version (version_num) VALUES ('0001')" in planned.sql
    assert "CREATE TABLE entries" not in planned.sql
    assert revision_of(engine) == []


def test_processes_starting_together_both_succeed(backend_url: str, engine: Engine) -> None:
    """Two processes open a new database at once; on PostgreSQL both are seen waiting on the
    advisory lock (held here), then both start."""
    name = f"dbmig{uuid.uuid4().hex[:8]}"
    url = backend_url
    if (
        engine.dialect.name == "postgresql"
    ):  # its own name, to find these two processes' connections
        url = (
            make_url(backend_url)
            .update_query_dict({"application_name": name})
            .render_as_string(False)
        )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = "import sys; from bot.store import Store; Store(sys.argv[1]).close()"
    cmd = [sys.executable, "-c", code, url]
    lock = {"k": migrations.ADVISORY_LOCK}
    with engine.connect() as holder:
        if engine.dialect.name == "postgresql":
            holder.execute(text("SELECT pg_advisory_lock(:k)"), lock)
            holder.commit()  # the session keeps the lock; each look below is a new transaction
        procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE) for _ in range(2)]
        try:
            if engine.dialect.name == "postgresql":
                deadline = time.monotonic() + 60
                waiting = 0
                while waiting < 2 and time.monotonic() < deadline:
                    time.sleep(0.1)
                    waiting = holder.execute(
                        text(
                            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                            "WHERE l.locktype = 'advisory' AND l.objid = :k AND NOT l.granted "
                            "AND a.application_name = :name"
                        ),
                        {**lock, "name": name},
                    ).scalar_one()
                    holder.rollback()  # pg_stat_activity is read once per transaction
                assert waiting == 2, "both processes wait for the advisory lock"
                holder.execute(text("SELECT pg_advisory_unlock(:k)"), lock)
                holder.commit()
            results = [
                (p.wait(timeout=120), p.stderr.read().decode() if p.stderr else "") for p in procs
            ]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
                if p.stderr:
                    p.stderr.close()
    assert results == [(0, ""), (0, "")]
    assert revision_of(engine) == [(HEAD,)]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM schema_version")).all() == [(1,)]


@pytest.fixture
def scripts_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The migration scripts copied to tmp_path and used instead of the package's."""
    copy = tmp_path / "migrations"
    shutil.copytree(migrations.SCRIPT_LOCATION, copy, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(migrations, "SCRIPT_LOCATION", str(copy))
    migrations.scripts.cache_clear()
    migrations.known_revisions.cache_clear()
    yield copy
    migrations.scripts.cache_clear()
    migrations.known_revisions.cache_clear()


def add_revision(scripts: Path, message: str, upgrade: str) -> None:
    """A new revision in the copied scripts, written by the helper, with `upgrade` as its body."""
    revision_cli(["revision", "-m", message])
    (script,) = (scripts / "versions").glob(f"*_{message.replace(' ', '_').replace('.', '_')}.py")
    text_ = script.read_text()
    head_, tail = text_[: text_.index("\ndef upgrade")], text_[text_.index("\n\ndef downgrade") :]
    script.write_text(head_ + upgrade + tail)
    migrations.scripts.cache_clear()
    migrations.known_revisions.cache_clear()


FUTURE = '''
def upgrade() -> None:
    """A future migration that SQLite can only do by copying the table (batch mode)."""
    with op.batch_alter_table("entries") as batch:
        batch.add_column(sa.Column("score", sa.Float(), nullable=True))
        batch.alter_column("summary", existing_type=sa.Text(), nullable=True)
'''


def test_a_future_migration_copying_a_referenced_table_keeps_every_row(
    backend_url: str, engine: Engine, scripts_copy: Path
) -> None:
    legacy_database(engine)
    fill(engine)
    rows = dump(engine)
    Store(backend_url).close()  # stamped at 0001
    add_revision(scripts_copy, "add entries.score", FUTURE)
    store = Store(backend_url)
    try:
        assert revision_of(engine) == [(NEXT,)]
        if engine.dialect.name == "sqlite":
            with store.engine.connect() as conn:  # the one that migrated: foreign keys on again
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        store.close()
    after = dump(engine)
    assert after.pop("entries") == [(*row, None) for row in rows.pop("entries")]
    assert after == {**with_0002(rows), **NEW_TABLES}


BROKEN = '''
def upgrade() -> None:
    """A migration whose second step fails."""
    op.create_table("trending", sa.Column("entry_id", sa.String(300), primary_key=True))
    op.execute("UPDATE entries SET no_such_column = 1")
'''


def test_a_failed_migration_changes_nothing(
    backend_url: str, engine: Engine, scripts_copy: Path
) -> None:
    legacy_database(engine)
    fill(engine)
    rows = dump(engine)
    add_revision(scripts_copy, "broken", BROKEN)
    with pytest.raises(
        StoreError, match=f"to revision {NEXT} failed, nothing was changed .*no_such_column"
    ):
        Store(backend_url)
    assert revision_of(engine) == []  # not even the stamp of 0001
    assert dump(engine) == rows  # and no table "trending"


def test_the_revision_helper_numbers_scripts_and_autogenerates_the_store_types(
    scripts_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    revision_cli(["revision", "--autogenerate", "-m", "nothing new"])
    (empty,) = (scripts_copy / "versions").glob(f"{NEXT}_nothing_new.py")
    assert f"revision: str = '{NEXT}'" in empty.read_text()
    assert f"down_revision: str | Sequence[str] | None = '{HEAD}'" in empty.read_text()
    assert "op." not in empty.read_text().split("def upgrade")[1]  # the metadata has nothing new
    newer = MetaData()
    for table in metadata.tables.values():
        table.to_metadata(newer)
    newer.tables["entries"].append_column(Column("seen_by", Float, nullable=True))
    newer.tables["entries"].append_column(Column("trending_at", UTCDateTime, nullable=True))
    monkeypatch.setattr(_schema, "metadata", newer)  # what env.py compares the database with
    revision_cli(["revision", "--autogenerate", "-m", "trending"])
    body = (scripts_copy / "versions" / f"{AFTER_NEXT}_trending.py").read_text()
    assert f"revision: str = '{AFTER_NEXT}'" in body
    assert "batch_op.add_column(sa.Column('trending_at', sa.DateTime(), nullable=True))" in body
    assert "batch_op.add_column(sa.Column('seen_by', sa.Float(), nullable=True))" in body


@pytest.mark.slow
def test_the_wheel_ships_the_scripts_and_an_installed_digestbot_migrates(
    tmp_path: Path, wheel: Path
) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {
        "__init__.py",
        "env.py",
        "__main__.py",
        "script.py.mako",
        "versions/0001_initial_schema.py",
        "versions/0002_subscriber_status_address.py",
        "versions/0003_bounces.py",
        "versions/0004_slack_members_and_installations.py",
    }
    assert {f"bot/store/migrations/{name}" for name in shipped} <= names
    target = tmp_path / "site"
    install = [
        sys.executable,
        "-m",
        "pip",
        "install",
        "-q",
        "--no-deps",
        "--target",
        str(target),
        str(wheel),
    ]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    code = (
        "import sys, bot; assert bot.__file__.startswith(sys.argv[1]), bot.__file__; "
        "from bot.store import migrate; print(migrate(sys.argv[2]))"
    )
    db = tmp_path / "installed.db"
    ran = subprocess.run(
        [sys.executable, "-c", code, str(target), f"sqlite:///{db}"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == f"sqlite:///{db}: created the tables at revision {HEAD}\n"
