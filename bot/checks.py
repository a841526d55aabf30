"""What `digestbot check` checks beyond reading the files: that mail may go out to the configured
server, and that the templates (bundled, or overridden in templates_dir) render a digest."""

from __future__ import annotations

from datetime import UTC, datetime

from .config import Settings
from .errors import Problem
from .models import Digest, DigestItem, Entry, Interests, Subscriber

_FIX = "fix the template (templates/README lists what a template can use)"


def sample_digest() -> Digest:
    """A digest with every field filled in, for rendering the templates once."""
    sub = Subscriber(
        id="check",
        name="Sample Subscriber",
        email="sample@example.org",
        interests=Interests(description="post-training quantization", keywords=("quantization",)),
    )
    entry = Entry(
        id="arxiv:2611.00001",
        title="A sample paper on quantization",
        summary="What a digest shows of an abstract, shortened to a line or two.",
        url="https://arxiv.org/abs/2611.00001",
        authors=("Ada Lovelace", "Alan Turing"),
        published=datetime(2026, 11, 27, tzinfo=UTC),
        source="arxiv",
        tags=("cs.LG",),
    )
    item = DigestItem(entry, 1.0, ("keyword: quantization",), "quantization")
    return Digest("check.20261128T0800Z", sub, datetime(2026, 11, 28, 8, tzinfo=UTC), (item,), 1)


def template_problems(settings: Settings) -> list[Problem]:
    """A problem (template file, line and what is wrong) for each template that does not render."""
    from .render import render_email, slack_messages

    digest = sample_digest()
    problems: list[Problem] = []
    for render in (render_email, slack_messages):
        try:
            render(digest, settings)
        except Exception as e:  # noqa: BLE001  whatever a template raises: names, types, syntax
            problem = _where(e)
            if str(problem) not in {str(p) for p in problems}:
                problems.append(problem)
    return problems


def _where(e: Exception) -> Problem:
    """The template file and line of a rendering error (`template_errors.template_error` places it)."""
    from .template_errors import template_error

    found = template_error(e)
    if found is None:
        return Problem("(templates)", "", f"a digest does not render ({e}); {_FIX}")
    line = f"line {found.line}" if found.line else ""
    return Problem(found.path, line, f"{found.problem}; {_FIX}")


def sending_problems(settings: Settings) -> list[Problem]:
    """Why mail may not go out to the configured SMTP server (the refusal `run` makes at start)."""
    refused = settings.sending_problem()
    if refused is None:
        return []
    where = "environment" if refused.key.startswith("DIGESTBOT_") else str(settings.config_path)
    return [Problem(where, refused.key, str(refused).removeprefix(f"{refused.key}: "))]
