"""The store's engine: connection options, SQLite pragmas, transactions, retries and migration."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec, Self, TypeVar

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DatabaseError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
)

from ..config import mask_url
from ..errors import StoreError
from . import migrations
from .migrations import Migration

log = logging.getLogger("bot.store")  # the name it had as one module
_P = ParamSpec("_P")
_T = TypeVar("_T")
RETRY_DELAYS = (0.2, 1.0, 3.0)  # seconds between tries of a ledger transaction the database dropped


def _transient(e: StoreError) -> bool:
    """Whether a failed transaction is worth running again: the server went away, or a lock."""
    cause = e.__cause__
    if not isinstance(cause, OperationalError):
        return False
    message = str(cause.orig).lower()
    return bool(cause.connection_invalidated) or any(
        w in message
        for w in (
            "locked",
            "busy",
            "connection",
            "server closed",
            "terminat",
            "shutdown",
            "timeout",
        )
    )


def _again_on_conflict(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """Run a read-then-write transaction once more if another process inserted the same key meanwhile.

    (PostgreSQL: two processes fetching one source at once; the second try sees the row and updates it.)
    """

    @functools.wraps(method)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        try:
            return method(*args, **kwargs)
        except IntegrityError:
            return method(*args, **kwargs)

    return run


def retrying(method: Callable[_P, _T]) -> Callable[_P, _T]:
    """Run a ledger transaction again when the database was busy or the connection dropped.

    Only for methods that are safe to repeat: each is one transaction that either committed or
    did not, and repeating a committed one changes nothing that matters (see `claim`).
    """

    @functools.wraps(method)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return retried(lambda _again: method(*args, **kwargs))

    return run


def retried(attempt: Callable[[bool], _T]) -> _T:
    """`attempt(again)` until it does not fail for a transient reason (`RETRY_DELAYS` apart);
    `again` is True from the second try on, for a transaction that must recognise what an
    unacknowledged first try committed (`claim_many`)."""
    for n, delay in enumerate((*RETRY_DELAYS, None)):
        try:
            return attempt(n > 0)
        except StoreError as e:
            if delay is None or not _transient(e):
                raise
            log.warning("%s; trying again in %.1f s", e, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _now() -> datetime:
    return datetime.now(UTC)


BATCH = 500  # ids per `IN (...)` list: well within every backend's limit on bound parameters


def _batches(ids: list[str]) -> Iterator[list[str]]:
    """`ids` in slices of at most BATCH, one `IN (...)` query each."""
    for i in range(0, len(ids), BATCH):
        yield ids[i : i + BATCH]


def _engine_options(url: str) -> dict[str, Any]:
    if url.startswith("sqlite"):
        # timeout is sqlite3's busy timeout: wait for a writer instead of failing at once.
        return {"connect_args": {"timeout": 30}}
    return {"pool_pre_ping": True}


# PRAGMA synchronous in WAL mode. NORMAL: a commit is in the WAL (the OS's page cache) when it
# returns, so it survives the process being killed; the WAL is fsynced at checkpoints, so a power
# loss or OS crash may roll back the last commits. FULL: fsync at every commit (~10× slower).
SQLITE_SYNCHRONOUS = ("NORMAL", "FULL")


def _sqlite_pragmas(synchronous: str) -> Callable[[Any, Any], None]:
    def pragmas(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event issue BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    return pragmas


def _open_engine(url: str, sqlite_synchronous: str) -> Engine:
    """The engine for `url`, with digestbot's SQLite pragmas and BEGIN IMMEDIATE."""
    if sqlite_synchronous.upper() not in SQLITE_SYNCHRONOUS:
        raise StoreError(
            f"SQLite synchronous mode {sqlite_synchronous!r} is not one of "
            f"{', '.join(SQLITE_SYNCHRONOUS)}; set database_sqlite_synchronous to one of them"
        )
    try:
        engine = create_engine(url, **_engine_options(url))
    except (SQLAlchemyError, ImportError, ValueError) as e:
        raise StoreError(
            f"cannot use the database URL {mask_url(url)} ({e}); check DIGESTBOT_DATABASE_URL"
        ) from e
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(sqlite_synchronous.upper()))
        # BEGIN IMMEDIATE: take the write lock at the start, so two processes queue on the
        # busy timeout instead of failing when a read transaction turns into a write.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return engine


def migrate(
    database: str | Engine, *, sql: bool = False, sqlite_synchronous: str = "NORMAL"
) -> Migration:
    """Upgrade a database (URL or engine) to this digestbot's schema: `digestbot migrate`.

    With `sql`, nothing is changed: the result's `sql` is what the upgrade would run.
    """
    if isinstance(database, Engine):
        engine, where = database, str(database.url)  # str() hides the password
    else:
        engine, where = _open_engine(database, sqlite_synchronous), mask_url(database)
    try:
        return migrations.plan(engine, where) if sql else migrations.upgrade(engine, where)
    finally:
        if engine is not database:
            engine.dispose()


def damaged(url: str, e: DatabaseError) -> StoreError | None:
    """The error for a database file that is damaged or not a database at all (a plain
    `DatabaseError`, as sqlite3 raises for "file is not a database" and "database disk image is
    malformed"); None for the other errors (a constraint, a lost connection: those are handled
    where they happen)."""
    if type(e) is not DatabaseError:  # IntegrityError, OperationalError, ... are subclasses
        return None
    file = sqlite_path(url)
    where = f"the database file {file}" if file is not None else f"the database {mask_url(url)}"
    fix = (
        f"restore it from a backup, or move it away (mv {file} {file}.damaged) and digestbot "
        "starts a new, empty one"
        if file is not None
        else "restore it from a backup (pg_restore), or point DIGESTBOT_DATABASE_URL at a "
        "working database"
    )
    return StoreError(f"{where} is damaged or is not a database ({e.orig}); {fix}")


class StoreBase:
    """The engine and transactions every part of the store builds on."""

    def __init__(self, url: str, sqlite_synchronous: str = "NORMAL") -> None:
        self.url = url
        self.engine: Engine = _open_engine(url, sqlite_synchronous)
        try:
            self.migrate()
        except DatabaseError as e:  # not OperationalError: upgrade() turned those into StoreError
            self.engine.dispose()
            error = damaged(url, e)
            if error is None:
                raise
            raise error from e
        except BaseException:
            self.engine.dispose()
            raise

    def migrate(self) -> Migration:
        """Upgrade the schema to this digestbot's (creating the tables on first use); refuse a
        database from a newer digestbot."""
        return migrations.upgrade(self.engine, mask_url(self.url))

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction, with driver errors turned into `StoreError`."""
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as e:
            raise StoreError(
                f"the database {mask_url(self.url)} failed ({e.orig}); check that it is reachable and try again"
            ) from e
        except DatabaseError as e:  # damaged after it was opened (a page that cannot be read)
            error = damaged(self.url, e)
            if error is None:
                raise
            raise error from e

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite database URL names; None for other databases and in-memory SQLite."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)
