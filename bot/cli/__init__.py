"""The `digestbot` command: the group, its global options, the one place that catches `BotError`.

Each command lives in the module of its group and only parses, calls and prints:
`run` (run, fetch, worker), `status`, `digests` (history, preview, feedback), `match` (match,
topics), `setup` (init, check, migrate) and `web` (serve). `_context` holds what they share.
"""

from __future__ import annotations

import traceback
from collections.abc import Sequence
from typing import Any

import click
from sqlalchemy.exc import DatabaseError

from .. import __version__
from .._console import setup_logging
from ..errors import BotError
from ..store import damaged
from ._context import Context
from .bounces import bounces, resume
from .digests import feedback, history, preview
from .match import match, topics
from .run import fetch, run, worker
from .setup import check, init, migrate
from .status import status
from .web import serve, slack_manifest

__all__ = ["EXIT_CODES", "Context", "cli", "main"]


class _Cli(click.Group):
    """The command group that catches `BotError` in one place: the message and exit 1, no traceback
    unless -v."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BotError as e:
            _fail(ctx, str(e), e.exit_code)
        except DatabaseError as e:
            # A damaged database met outside the store's transactions (the store turns the ones
            # it meets into StoreError): one line with the file and the fix, not a traceback.
            loaded = ctx.obj._settings if isinstance(ctx.obj, Context) else None
            error = damaged(loaded.database_url if loaded else "", e)
            if error is None:
                raise
            _fail(ctx, str(error), 1)
        except BrokenPipeError:
            raise  # the reader went away (`digestbot history alice | head`): click exits quietly
        except OSError as e:
            # A file digestbot may not read or write: the user's to fix, not a bug.
            what = f"{e.filename}: " if e.filename else ""
            _fail(
                ctx,
                f"{what}{e.strerror or e}; check that it exists and that the user digestbot "
                "runs as "
                "may read and write it",
                1,
            )


def _fail(ctx: click.Context, message: str, code: int) -> None:
    obj = ctx.obj if isinstance(ctx.obj, Context) else None
    if obj is not None and obj.verbose:
        click.echo(traceback.format_exc().rstrip(), err=True)
    click.echo(f"Error: {message}", err=True)
    ctx.exit(code)


EXIT_CODES = """\b
Exit codes:
  0  everything went fine
  1  a problem you must fix; the message says how (-v shows the traceback)
  2  a usage error: an unknown command or option, a missing argument"""


@click.group(cls=_Cli, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EXIT_CODES)
@click.version_option(__version__, prog_name="digestbot")
@click.option(
    "--config",
    "config",
    metavar="PATH",
    help="The config file (default: ./digestbot.toml or $DIGESTBOT_CONFIG).",
)
@click.option(
    "-v", "--verbose", count=True, help="More logging (-vv: debug); -v also shows tracebacks."
)
@click.option("-q", "--quiet", is_flag=True, help="Only problems: no progress, no summaries.")
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="json: one JSON object per log line, for log collectors.",
)
@click.pass_context
def cli(ctx: click.Context, config: str | None, verbose: int, quiet: bool, log_format: str) -> None:
    """digestbot: new papers from Hugging Face, arXiv and RSS, matched to each subscriber and
    sent by email or Slack on their own schedule.

    \b
    Quick start:
      digestbot init            write a working setup into this folder
      digestbot check           list every configuration problem
      digestbot run --once      fetch everything, send every digest that is due
    """
    if verbose and quiet:
        raise click.UsageError("-v and -q contradict each other; give one of them")
    setup_logging(verbose, quiet, log_format)
    ctx.obj = Context(config, verbose, quiet, log_format)


for _command in (
    run,
    match,
    check,
    feedback,
    status,
    serve,
    fetch,
    init,
    history,
    preview,
    topics,
    worker,
    bounces,
    resume,
    migrate,
    slack_manifest,
):
    cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: the `digestbot` command (errors caught in the group, usage errors by click)."""
    cli.main(args=argv, prog_name="digestbot")
