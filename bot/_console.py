"""Console output for the CLI: progress on a terminal, one-line summaries elsewhere, tables, JSON logs."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

import click

from .masking import SecretFilter

# C0 and C1 control characters (except tab): a feed title must not move the cursor or recolor
# the terminal of whoever reads `digestbot history`.


class JsonFormatter(logging.Formatter):
    """One JSON object per log record, for log collectors (`--log-format json`)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_text:  # the traceback as `SecretFilter` masked it
            out["traceback"] = record.exc_text
        elif record.exc_info:
            out["traceback"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever `sys.stderr` is at the time of each record (click's test runner swaps it)."""

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        pass


def setup_logging(
    verbose: int, quiet: bool, log_format: str, stream: IO[str] | None = None
) -> None:
    """Route digestbot's logs to stderr: warnings by default, -v info, -vv debug, -q errors only.

    Every record, the libraries' too (slack-sdk, urllib3), passes `SecretFilter` first.
    """
    level = (
        logging.ERROR
        if quiet
        else (logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    )
    handler: logging.Handler = logging.StreamHandler(stream) if stream else _StderrHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_digestbot", False)]:
        root.removeHandler(old)
    handler.addFilter(SecretFilter())
    handler._digestbot = True  # type: ignore[attr-defined,unused-ignore]
    root.addHandler(handler)
    root.setLevel(level)


def printed_by_the_command(logger: str) -> None:
    """Without -v, only errors from `logger`: its warnings are what the command prints anyway."""
    if not logging.getLogger().isEnabledFor(logging.INFO):
        logging.getLogger(logger).setLevel(logging.ERROR)


class Console:
    """What the CLI shows: quiet or not, progress bars only when stdout is a terminal."""

    def __init__(self, quiet: bool = False, tty: bool | None = None) -> None:
        self.quiet = quiet
        self.tty = sys.stdout.isatty() if tty is None else tty

    def say(self, text: str = "") -> None:
        """A normal line on stdout (nothing under -q)."""
        if not self.quiet:
            click.echo(text)

    def warn(self, text: str) -> None:
        """A line on stderr that -q does not hide."""
        click.echo(text, err=True)

    @contextmanager
    def progress(self, label: str, total: int) -> Iterator[Callable[[], None]]:
        """A progress bar on a terminal; yields the function to call once per step."""
        if not self.tty or self.quiet or total == 0:
            yield lambda: None
            return
        with click.progressbar(length=total, label=label, show_pos=True) as bar:
            yield lambda: bar.update(1)
            bar.update(max(0, total - bar.pos))  # steps that never came (e.g. subscribers not due)

    def table(self, rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> None:
        """Rows as aligned columns (nothing under -q)."""
        for line in table_lines(rows, header):
            self.say(line)


def table_lines(rows: Sequence[Sequence[str]], header: Sequence[str] | None = None) -> list[str]:
    """Rows as lines of left-aligned columns two spaces apart; the last column is not padded."""
    all_rows = [list(header)] if header else []
    all_rows += [list(r) for r in rows]
    if not all_rows:
        return []
    widths = [
        max(len(r[i]) for r in all_rows if i < len(r)) for i in range(max(map(len, all_rows)))
    ]
    lines = []
    for r in all_rows:
        cells = [c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append("  ".join(cells).rstrip())
    return lines


def plural(n: int, word: str, many: str | None = None) -> str:
    """`1 source`, `2 sources`, `3 entries` (with `many` given)."""
    return f"{n} {word if n == 1 else many or word + 's'}"
