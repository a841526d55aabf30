"""A user's template mistake, placed: the template file, the line and the problem.

`bot.render` raises these from every render; `digestbot check` and `preview` show them.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from jinja2 import TemplateSyntaxError, UndefinedError

from .errors import BotError, TemplateError


def _shown(path: str) -> str:
    """A template's path as the user knows it: relative to the working folder when under it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def template_error(e: BaseException) -> TemplateError | None:
    """The user's template mistake behind a rendering error, as a `TemplateError` naming the file,
    the line and the problem; None when no template line raised it (a bug of digestbot's own).

    Jinja2 compiles a template to Python code whose frames carry the template's file name and
    line, so a runtime error (an undefined name, a bad filter argument) is placed by the last
    such frame of its traceback; a syntax error carries them itself.
    """
    if isinstance(e, TemplateError):
        return e
    if isinstance(e, TemplateSyntaxError):
        return TemplateError(
            _shown(e.filename or e.name or "(template)"), e.lineno, e.message or ""
        )
    frames = [
        f for f in traceback.extract_tb(e.__traceback__) if f.filename.endswith((".j2", ".jinja"))
    ]
    if not frames or isinstance(e, BotError):
        return None
    problem = str(e) if isinstance(e, UndefinedError) else f"{type(e).__name__}: {e}"
    return TemplateError(_shown(frames[-1].filename), frames[-1].lineno, problem)


@contextmanager
def template_errors() -> Iterator[None]:
    """Raise the user's template mistakes met inside as `TemplateError` (see `template_error`)."""
    try:
        yield
    except Exception as e:
        found = template_error(e)
        if found is None or found is e:
            raise
        raise found from e
