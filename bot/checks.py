"""What `digestbot check` checks beyond reading the files: that mail may go out to the configured
server, that the templates (bundled, or overridden in templates_dir) render a digest, and that
each subscriber's channel can send (else `run` would leave their digests waiting)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from ._console import plural
from .config import Settings
from .errors import Problem
from .models import Digest, DigestItem, Entry, Interests, Subscriber

_FIX = "fix the template (README, 'Templates', lists what it may use)"
_NAMED = 3  # subscriber ids a grouped channel problem names


def sample_digest() -> Digest:
    """A digest with every field filled in, for rendering the templates: a Hugging Face paper
    (counts, TL;DR, code and project links) and an arXiv one (none of them)."""
    sub = Subscriber(
        id="check",
        name="Sample Subscriber",
        email="sample@example.org",
        interests=Interests(description="post-training quantization", keywords=("quantization",)),
    )
    hf = Entry(
        id="arxiv:2611.00001",
        title="A sample paper on quantization",
        summary="What a digest shows of an abstract, shortened to a line or two.",
        url="https://arxiv.org/abs/2611.00001",
        authors=("Ada Lovelace", "Alan Turing"),
        published=datetime(2026, 11, 27, tzinfo=UTC),
        source="hf-daily",
        tags=("cs.LG",),
        extra={
            "upvotes": 42,
            "comments": 3,
            "github_repo": "https://github.com/example/quant",
            "github_stars": 120,
            "project_page": "https://example.org/quant",
            "hf_url": "https://huggingface.co/papers/2611.00001",
            "ai_summary": "A one-line summary of the paper.",
        },
    )
    arxiv = Entry(
        id="arxiv:2611.00002",
        title="Another sample paper",
        summary="An abstract from an arXiv listing: no counts, no summary.",
        url="https://arxiv.org/abs/2611.00002",
        authors=("Grace Hopper",),
        published=datetime(2026, 11, 27, tzinfo=UTC),
        source="arxiv",
    )
    items = (
        DigestItem(hf, 1.0, ("keyword: quantization",), "quantization"),
        DigestItem(arxiv, 0.5, ("about: post-training quantization",), ""),
    )
    return Digest("check.20261128T0800Z", sub, datetime(2026, 11, 28, 8, tzinfo=UTC), items, 1)


def template_problems(settings: Settings) -> list[Problem]:
    """A problem (template file, line and what is wrong) for each template that does not render."""
    from .render import render_email, slack_messages

    digest = sample_digest()
    problems: list[Problem] = []
    renders = (
        lambda: render_email(digest, settings),
        lambda: render_email(digest, settings, full=1),  # the list of titles of a long digest
        lambda: render_email(digest, settings, full=0),
        lambda: slack_messages(digest, settings),
    )
    for render in renders:
        try:
            render()
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


def channel_problems(
    settings: Settings, subscribers: Iterable[Subscriber]
) -> tuple[list[Problem], int]:
    """Why the channel that serves a subscriber (`channel_for`) cannot send to them now (its
    `missing`), with the fix `not_ready` gives at run time, where such digests wait; and how
    many subscribers that holds up.

    One problem per reason: 1,000 Slack members without a token are one line, not 1,000. It
    names the file of a lone file subscriber, else how many and a few ids; the key is the file
    key of the destination when every subscriber in the group is from a file and gives the same.
    """
    from .channels import CHANNELS, channel_for, unready_fix

    groups: dict[str, list[Subscriber]] = {}
    for sub in subscribers:
        why = CHANNELS[channel_for(sub, settings)].missing(sub, settings)
        if why:
            groups.setdefault(why, []).append(sub)
    problems = []
    for why, subs in groups.items():
        keys = {_file_key(s) for s in subs}
        key = keys.pop() if len(keys) == 1 else ""
        problems.append(Problem(_who(subs), key, f"{why}; {unready_fix(settings)}"))
    return problems, sum(map(len, groups.values()))


def _from_file(sub: Subscriber) -> bool:
    return sub.origin not in ("", "web", "slack")


def _file_key(sub: Subscriber) -> str:
    """The subscription file key that gives a file subscriber's destination; "" for the others."""
    from .channels import channel_of, field_value

    cls = channel_of(sub)
    if cls is None or not _from_file(sub):
        return ""
    return next((f.name for f in cls.fields if field_value(sub, f.name)), "")


def _who(subs: list[Subscriber]) -> str:
    """The file of a lone file subscriber, else e.g. "12 Slack members (slack-T1-U1, …)"."""
    if len(subs) == 1 and _from_file(subs[0]):
        return subs[0].origin
    origins = {s.origin for s in subs}
    noun = "subscriber"
    if origins == {"slack"}:
        noun = "Slack member"
    elif origins == {"web"}:
        noun = "web subscriber"
    named = ", ".join(s.id for s in subs[:_NAMED]) + ("…" if len(subs) > _NAMED else "")
    return f"{plural(len(subs), noun)} ({named})"
