"""Schema migrations: Alembic, configured in code, its scripts shipped inside the package.

Every start upgrades the database (`Store()` calls `upgrade`), and `digestbot migrate` does it on
demand (`plan` gives the SQL without running it). A database made before migrations (tables and
`schema_version` 1, no `alembic_version`) is stamped at revision 0001, which creates exactly
those tables, then upgraded like any other. How to add a migration: README.md, "Schema migrations",
and `python -m bot.store.migrations revision -m "what it does"`.
"""

from __future__ import annotations

import functools
import io
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import inspect, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from ... import __version__
from ...errors import StoreError
from .._schema import SCHEMA_VERSION, metadata, schema_version

log = logging.getLogger("bot.store")
SCRIPT_LOCATION = str(Path(__file__).resolve().parent)
# The revision whose tables digestbot made before migrations (its schema_version 1).
LEGACY_REVISION = "0001"
# PostgreSQL: one process migrates at a time (the key digestbot has always used).
ADVISORY_LOCK = 7362910
# alembic's `op` and `context` are process-wide proxies: one migration at a time per process.
_ALEMBIC = threading.Lock()


def alembic_config(output_buffer: io.StringIO | None = None, **attributes: Any) -> Config:
    """Alembic's configuration for digestbot's scripts; `attributes` reach env.py (its connection,
    or the dialect's name for SQL written out)."""
    cfg = Config(output_buffer=output_buffer)
    cfg.set_main_option("script_location", SCRIPT_LOCATION)
    cfg.set_main_option("file_template", "%%(rev)s_%%(slug)s")
    cfg.attributes.update(attributes)
    return cfg


@functools.cache
def scripts() -> ScriptDirectory:
    """The migration scripts (read once per process)."""
    return ScriptDirectory.from_config(alembic_config())


def head() -> str:
    """The newest revision this digestbot knows."""
    found = scripts().get_current_head()
    if found is None:
        raise StoreError(f"no migration scripts in {SCRIPT_LOCATION}; reinstall digestbot")
    return found


@functools.cache
def known_revisions() -> frozenset[str]:
    """Every revision this digestbot has a script for."""
    return frozenset(s.revision for s in scripts().walk_revisions())


@dataclass(frozen=True, slots=True)
class Migration:
    """What an upgrade found and did (or, with `sql`, would do) to one database."""

    url: str  # passwords masked
    before: str | None  # the revision found; None: no tables yet, or made before migrations
    after: str
    legacy: bool = False  # made before migrations: stamped at LEGACY_REVISION, its rows kept
    sql: str | None = None  # plan(): the SQL the upgrade would run (nothing was changed)

    @property
    def changed(self) -> bool:
        """Whether the database is (or, planned, would be) changed."""
        return self.legacy or self.before != self.after

    def __str__(self) -> str:
        if not self.changed:
            return (
                f"{self.url}: at revision {self.after}, the newest this digestbot knows; "
                "nothing to do"
            )
        planned = self.sql is not None

        def did(now: str, past: str) -> str:
            return f"would {now}" if planned else past

        if self.legacy:
            then = f", then {did('upgrade', 'upgraded')} it to {self.after}"
            if self.after == LEGACY_REVISION:
                then = ""
            return (
                f"{self.url}: made before migrations (schema version {SCHEMA_VERSION}); "
                f"{did('stamp', 'stamped')} it at revision {LEGACY_REVISION}, every row kept{then}"
            )
        if self.before is None:
            return f"{self.url}: {did('create', 'created')} the tables at revision {self.after}"
        return f"{self.url}: {did('upgrade', 'upgraded')} from {self.before} to {self.after}"


@dataclass(frozen=True, slots=True)
class _Found:
    revision: str | None
    legacy: bool


def _found(conn: Connection, where: str) -> _Found:
    """The database's revision; refuses one from a newer digestbot (either kind of version)."""
    heads = MigrationContext.configure(conn).get_current_heads()
    unknown = sorted(set(heads) - known_revisions())
    if unknown:
        raise StoreError(
            f"the database {where} is at schema revision {', '.join(unknown)}, which this "
            f"digestbot ({__version__}, newest revision {head()}) does not know: a newer "
            "digestbot upgraded it; upgrade digestbot"
        )
    legacy = inspect(conn).has_table(schema_version.name)
    version = conn.execute(select(schema_version.c.version)).scalar() if legacy else None
    if version is not None and version > SCHEMA_VERSION:
        raise StoreError(
            f"the database {where} has schema version {version}, newer than this "
            f"digestbot's {SCHEMA_VERSION}; upgrade digestbot"
        )
    return _Found(heads[0] if heads else None, legacy=legacy and not heads)


@contextmanager
def _foreign_keys_off(conn: Connection) -> Iterator[None]:
    """SQLite: foreign keys off while migrating, on again after.

    A batch migration copies a table, drops the old one and renames the copy; with foreign keys
    on, dropping a referenced table (entries, digests) fails. The pragma does nothing inside a
    transaction, so it is set before BEGIN; `_check_foreign_keys` runs before the commit instead.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.driver_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys=OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(conn: Connection, where: str) -> None:
    if conn.dialect.name == "sqlite":
        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if broken:
            raise StoreError(
                f"upgrading {where} to revision {head()} would leave rows pointing at no row "
                f"({broken[:3]}); nothing was changed; report it with this message"
            )


def _check_complete(conn: Connection, where: str) -> None:
    """Refuse, rather than guess, a database of an early development version (missing columns)."""
    diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    missing = [d[1].name for d in diffs if d[0] == "add_table"]
    missing += [f"{d[2]}.{d[3].name}" for d in diffs if d[0] == "add_column"]
    if missing:
        raise StoreError(
            f"the database {where} was made by an early development version of digestbot: it "
            f"lacks {', '.join(missing)}; nothing was changed. Start with a new database (move "
            "this one aside) or add them by hand, then start digestbot again"
        )


def _cannot_open(where: str, e: OperationalError) -> StoreError:
    return StoreError(
        f"cannot open the database {where} ({e.orig}); check DIGESTBOT_DATABASE_URL "
        "and that the server is running"
    )


def _run(conn: Connection, where: str, found: _Found) -> None:
    """Stamp a database made before migrations, upgrade to the newest revision, check the result."""
    try:
        cfg = alembic_config(connection=conn)
        if found.legacy:
            command.stamp(cfg, LEGACY_REVISION)
        command.upgrade(cfg, "head")
        if found.legacy:
            _check_complete(conn, where)
        _check_foreign_keys(conn, where)
    except (SQLAlchemyError, CommandError) as e:
        raise StoreError(
            f"upgrading the database {where} to revision {head()} failed, nothing was "
            f"changed ({e}); report it with this message"
        ) from e


def upgrade(engine: Engine, where: str) -> Migration:
    """Bring the database to the newest revision, in one transaction; `where` is the masked URL.

    On PostgreSQL under an advisory lock, so that processes starting together wait for the first
    instead of racing on CREATE TABLE; on SQLite BEGIN IMMEDIATE does the same.
    """
    with _ALEMBIC:
        try:
            with engine.connect() as conn, _foreign_keys_off(conn), conn.begin():
                if engine.dialect.name == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
                found = _found(conn, where)
                if found.revision == head():
                    return Migration(where, found.revision, head())
                _run(conn, where, found)
        except OperationalError as e:  # connecting, or waiting for the lock (the rest is wrapped)
            raise _cannot_open(where, e) from e
    done = Migration(where, found.revision, head(), legacy=found.legacy)
    log.info("%s", done)
    return done


def plan(engine: Engine, where: str) -> Migration:
    """What `upgrade` would do, with the SQL it would run in `sql`; changes nothing."""
    with _ALEMBIC:
        found = _Found(None, legacy=False)
        database = engine.url.database
        absent = (
            engine.dialect.name == "sqlite"
            and database not in (None, "", ":memory:")
            and not Path(database or "").exists()
        )
        if not absent:  # (connecting would create the SQLite file)
            try:
                with engine.connect() as conn:
                    found = _found(conn, where)
            except OperationalError as e:
                raise _cannot_open(where, e) from e
        if found.revision == head():
            return Migration(where, found.revision, head(), sql="")
        out = io.StringIO()
        cfg = alembic_config(output_buffer=out, dialect_name=engine.dialect.name)
        start = LEGACY_REVISION if found.legacy else found.revision
        if found.legacy:
            command.stamp(cfg, LEGACY_REVISION, sql=True)
        command.upgrade(cfg, f"{start}:head" if start else "head", sql=True)
    return Migration(where, found.revision, head(), legacy=found.legacy, sql=out.getvalue())
