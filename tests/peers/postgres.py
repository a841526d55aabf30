"""The PostgreSQL peer: a fresh schema on the server DIGESTBOT_TEST_DATABASE_URL names.

Without that variable, or without a server that answers, the test is skipped with the reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import pytest
from sqlalchemy import Engine, create_engine, text

ENV = "DIGESTBOT_TEST_DATABASE_URL"


class PgSchema(NamedTuple):
    """A schema of one test's own: its URL, its name, and an engine outside it (to kill or peek)."""

    url: str  # search_path is the schema; application_name is its name, to find its connections
    name: str
    admin: Engine


def pg_base_url() -> str:
    """DIGESTBOT_TEST_DATABASE_URL, or skip the test saying how to run it."""
    base = os.environ.get(ENV, "")
    if not base.startswith("postgresql"):
        pytest.skip(
            f"set {ENV}=postgresql+psycopg://postgres@127.0.0.1:5432/test to run the PostgreSQL tests"
        )
    return base


@contextmanager
def pg_schema() -> Iterator[PgSchema]:
    """A fresh schema on the test server, dropped with everything in it afterwards."""
    base = pg_base_url()
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, connect_args={"connect_timeout": 5})
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {name}"))
    except Exception as e:  # noqa: BLE001 - a server that cannot be reached means skip, saying why
        admin.dispose()
        pytest.skip(
            f"PostgreSQL at {ENV} is not usable here ({type(e).__name__}: {str(e).splitlines()[0]})"
        )
    sep = "&" if "?" in base else "?"
    try:
        yield PgSchema(
            f"{base}{sep}options=-csearch_path%3D{name}&application_name={name}", name, admin
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {name} CASCADE"))
        admin.dispose()
