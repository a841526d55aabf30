"""Alembic's command line on digestbot's migrations, configured in code (no alembic.ini).

    python -m bot.store.migrations revision -m "add entries.score"                 # an empty script
    python -m bot.store.migrations revision --autogenerate -m "add entries.score"  # filled in
    python -m bot.store.migrations history

A new revision is numbered after the newest (0002, 0003, …) unless --rev-id is given. Commands
that need a database get a new SQLite one at the newest revision, so `--autogenerate` writes what
`bot/store/_schema.py` has that the scripts do not: review it, then run tests/test_migrations.py.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from alembic.config import CommandLine
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine

from .. import migrate
from . import alembic_config


def next_revision() -> str:
    """The number after the newest numbered revision, as four digits (read afresh: not cached)."""
    revisions = [s.revision for s in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    return f"{max((int(r) for r in revisions if r.isdigit()), default=0) + 1:04d}"


def main(argv: Sequence[str] | None = None) -> None:
    """Run one alembic command (`--help` lists them) on the scripts in this folder."""
    cli = CommandLine(prog="python -m bot.store.migrations")
    options = cli.parser.parse_args(argv)
    if not hasattr(options, "cmd"):
        cli.parser.error('name a command, e.g. revision -m "what it does"')
    if options.cmd[0].__name__ == "revision" and not options.rev_id:
        options.rev_id = next_revision()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'head.db'}"
        migrate(url)
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                cfg = alembic_config(connection=conn)
                cfg.cmd_opts = options
                cli.run_cmd(cfg, options)
        finally:
            engine.dispose()


if __name__ == "__main__":
    main(sys.argv[1:])
