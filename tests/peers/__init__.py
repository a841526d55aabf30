"""The real peers the tests talk to, each on loopback, each started by the test that needs it.

- `SmtpPeer` (aiosmtpd; `SmtpScript` says how it misbehaves; `Mail` is what it accepted)
- `SlackPeer` (Slack's Web API and an incoming webhook; `Reply` scripts an answer)
- `pg_schema()` (a fresh PostgreSQL schema on DIGESTBOT_TEST_DATABASE_URL; `PgSchema`)
- `free_port()`, `wait_for()`, `make_certificate()`

conftest.py turns them into fixtures: `smtp_server`, `slack_server`, `pg_url`, `backend_url`.
"""

from .net import free_port, make_certificate, wait_for
from .postgres import PgSchema, pg_base_url, pg_schema
from .slack import SLACK_FIXTURES, Reply, SlackPeer
from .smtp import Mail, SmtpPeer, SmtpScript

__all__ = [
    "SLACK_FIXTURES",
    "Mail",
    "PgSchema",
    "Reply",
    "SlackPeer",
    "SmtpPeer",
    "SmtpScript",
    "free_port",
    "make_certificate",
    "pg_base_url",
    "pg_schema",
    "wait_for",
]
