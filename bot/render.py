"""The Jinja2 environment over templates/: a `Digest` → email (text + HTML) and Slack blocks."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

from .config import Settings
from .models import Digest

BUNDLED = Path(__file__).resolve().parent / "templates"  # inside an installed wheel
REPOSITORY = Path(__file__).resolve().parent.parent / "templates"  # in a source checkout


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """The parts of one digest email."""

    subject: str
    text: str
    html: str


def template_dirs(override: Path | None) -> list[Path]:
    """Where templates are looked up: the user's override folder first, then the bundled ones."""
    dirs = [override] if override else []
    dirs += [d for d in (BUNDLED, REPOSITORY) if d.is_dir()]
    return dirs


@lru_cache(maxsize=8)
def environment(override: Path | None = None) -> Environment:
    """The Jinja2 environment; HTML templates autoescaped, undefined names an error."""
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(d)) for d in template_dirs(override)]),
        autoescape=select_autoescape(["html", "html.j2"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["slack"] = slack_escape
    return env


def _context(digest: Digest, settings: Settings) -> dict[str, Any]:
    sub = digest.subscriber
    local = digest.slot.astimezone(ZoneInfo(sub.timezone))
    base = settings.base_url.rstrip("/")
    return {
        "digest": digest,
        "subscriber": sub,
        "items": digest.items,
        "date": local,
        "date_text": f"{local:%a %d %b %Y}",
        "base_url": base,
        "count": len(digest.items),
        "more": digest.more,
    }


def subject(digest: Digest) -> str:
    """A subject line that says what is inside: the date, how many, the top topic."""
    local = digest.slot.astimezone(ZoneInfo(digest.subscriber.timezone))
    n = len(digest.items)
    top = next((i.topic for i in digest.items if i.topic), "")
    lead = digest.items[0].entry.title if n else ""
    about = f" on {top}" if top else (f": {lead[:60]}" if lead else "")
    return f"{n} new paper{'s' if n != 1 else ''}{about} — {local:%a %d %b}"


def render_email(digest: Digest, settings: Settings) -> RenderedEmail:
    """The text and HTML bodies of a digest email, from the same context."""
    env = environment(settings.templates_dir)
    ctx = _context(digest, settings)
    return RenderedEmail(
        subject=subject(digest),
        text=env.get_template("email.txt.j2").render(ctx),
        html=env.get_template("email.html.j2").render(ctx),
    )


def render_slack(digest: Digest, settings: Settings) -> dict[str, Any]:
    """The Slack message for a digest: a `text` fallback and Block Kit `blocks`."""
    env = environment(settings.templates_dir)
    ctx = _context(digest, settings)
    item_tpl = env.get_template("slack_item.md.j2")
    head = subject(digest)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": head[:150]}}]
    for item in digest.items:
        text = item_tpl.render({**ctx, "item": item}).strip()
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}})
    return {"text": head, "blocks": blocks}


def slack_escape(text: str) -> str:
    """Escape &, < and > for Slack mrkdwn, so feed text cannot make links or mentions."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def when(dt: datetime | None) -> str:
    """A short date for display."""
    return f"{dt:%d %b %Y}" if dt else ""
