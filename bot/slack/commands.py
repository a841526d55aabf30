"""`/papers …`: read the words a member typed, change their subscription (team id and user id
in every lookup) and say what was done, or the one-line fix. No network: the slow part (their
Slack time zone, App Home) runs after the acknowledgement (`bot.slack.routes`)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..interest_input import MAX_DESCRIPTION, MAX_PHRASE, MAX_PHRASES
from ..interest_input import phrases as split_phrases
from ..models import Interests
from ..render import slack_escape
from ..store import SlackMemberRow, Store
from .members import describe_interests, describe_schedule, parse_when

HELP = """*`/papers`* — your own paper digest, sent to you as a direct message.
• `/papers subscribe <what you care about, in words>` — start (daily at 08:00, your Slack time zone)
• `/papers keywords a, b` · `/papers exclude c` · `/papers authors Name, Name` (nothing after clears)
• `/papers topics slug, slug` — `/papers topics` lists them
• `/papers trending on|off` — alone: the most upvoted papers since your last digest; \
with other interests: your matches, ordered by relevance blended with upvotes
• `/papers schedule daily 08:00` or `weekly mon 08:00` (optionally a time zone after)
• `/papers pause` · `resume` · `unsubscribe` · `show` · `help`"""
_LISTS = ("keywords", "exclude", "authors")
AGAIN = "You unsubscribed: `/papers subscribe <what you care about>` starts again."
FIRST = "tell me what you care about first: `/papers subscribe <words>`"
COMMANDS = (
    "subscribe",
    "keywords",
    "exclude",
    "topics",
    "authors",
    "trending",
    "schedule",
    "pause",
    "resume",
    "unsubscribe",
    "show",
    "help",
)


@dataclass(frozen=True, slots=True)
class Answer:
    """What the command replies (ephemeral mrkdwn), and whether the member's row changed."""

    text: str
    changed: bool = False
    subscribed: bool = False  # a new or renewed subscription: look up their Slack time zone


def phrases(text: str) -> tuple[str, ...] | str:
    """Comma-separated phrases, cleaned as the web forms clean them; a string with the fix when
    too many or too long (the forms' limits)."""
    items = split_phrases(text)
    if len(items) > MAX_PHRASES:
        return f"at most {MAX_PHRASES} phrases; keep the ones that matter most"
    long = next((p for p in items if len(p) > MAX_PHRASE), None)
    if long is not None:
        return f"{slack_escape(long[:30])}… is longer than {MAX_PHRASE} characters; shorten it"
    return items


def topic_problem(given: tuple[str, ...], topics: Mapping[str, str]) -> str:
    """The fix for the first unknown topic slug, with the nearest known one; "" when all known."""
    for slug in given:
        if slug not in topics:
            near = difflib.get_close_matches(slug, list(topics), n=1, cutoff=0.6)
            hint = f" — did you mean '{near[0]}'?" if near else ""
            return f"unknown topic '{slack_escape(slug)}'{hint} `/papers topics` lists them"
    return ""


def something_to_match(interests: Interests) -> bool:
    """Whether a subscription has anything to select papers by (`trending` alone is one: the most
    upvoted); exclusions, a schedule or trending off alone select nothing, as files and the web
    form refuse them."""
    return interests.has_subject or interests.trending


def show(row: SlackMemberRow | None) -> str:
    """The member's subscription as /papers show states it."""
    return "\n".join(show_lines(row))


def show_lines(row: SlackMemberRow | None) -> list[str]:
    """`show`, line by line (mrkdwn, the member's text escaped): App Home gives each its section."""
    if row is None:
        return [
            "You have no subscription yet: `/papers subscribe <what you care about>` starts one."
        ]
    interests = Interests.from_dict(row.interests)
    lines = [f"*Your digest* ({row.status}), {describe_schedule(row.schedule, row.zone)}:"]
    lines += [f"• {slack_escape(line)}" for line in describe_interests(interests)]
    if row.status == "unsubscribed":
        lines.append(AGAIN)
    return lines


def answer(
    store: Store, team_id: str, user_id: str, text: str, topics: Mapping[str, str]
) -> Answer:
    """Run one `/papers` command for (team, user) and return the reply."""
    verb, _, rest = text.strip().partition(" ")
    verb, rest = verb.lower(), rest.strip()
    row = store.slack_member(team_id, user_id)
    if verb in ("", "help"):
        return Answer(HELP)
    if verb == "show":
        return Answer(show(row))
    if verb not in COMMANDS:
        near = difflib.get_close_matches(verb, COMMANDS, n=1)
        hint = f" — did you mean `{near[0]}`?" if near else ""
        return Answer(
            f"unknown command '{slack_escape(verb[:30])}'{hint} `/papers help` lists them"
        )
    if verb in ("pause", "resume", "unsubscribe"):
        return _status(store, team_id, user_id, row, verb)
    interests = Interests.from_dict(row.interests if row else {})
    changes: dict[str, Any] = {}
    if verb == "subscribe":
        if not rest:
            return Answer("say what you care about: `/papers subscribe quantization of LLMs`")
        if len(rest) > MAX_DESCRIPTION:
            return Answer(f"keep it under {MAX_DESCRIPTION} characters")
        changes["interests"] = {**interests.to_dict(), "description": rest}
        changes["status"] = "active"
    elif verb in _LISTS or verb == "topics":
        if verb == "topics" and not rest:
            listed = ", ".join(f"`{slug}`" for slug in sorted(topics)) or "(none configured)"
            return Answer(f"Topics you can follow: {listed}")
        got = phrases(rest)
        if isinstance(got, str):
            return Answer(got)
        if verb == "topics":
            got = tuple(g.lower() for g in got)
            problem = topic_problem(got, topics)
            if problem:
                return Answer(problem)
        changes["interests"] = {**interests.to_dict(), verb: list(got)}
    elif verb == "trending":
        if rest.lower() not in ("on", "off"):
            return Answer("write `/papers trending on` or `/papers trending off`")
        changes["interests"] = {**interests.to_dict(), "trending": rest.lower() == "on"}
    else:  # schedule
        when = parse_when(rest)
        if isinstance(when, str):
            return Answer(when)  # the member's text in it is escaped already
        changes["schedule"], changes["timezone"] = when
    if row is None:
        if not something_to_match(Interests.from_dict(changes.get("interests") or {})):
            return Answer(FIRST)
        changes.setdefault("status", "active")
    saved = store.save_slack_member(team_id, user_id, **changes)
    new = verb == "subscribe" or row is None  # a new or renewed subscription
    return Answer("Done. " + show(saved), changed=True, subscribed=new)


def next_status(current: str, verb: str) -> str | None:
    """The status `pause`, `resume` or `unsubscribe` (the command or App Home's button) moves a
    member to, or None when it does not apply: resume only resumes a paused member (one who
    unsubscribed subscribes again), pause only an active one."""
    if verb == "pause" and current in ("active", "paused"):
        return "paused"
    if verb == "resume" and current == "paused":
        return "active"
    if verb == "unsubscribe" and current in ("active", "paused", "unsubscribed"):
        return "unsubscribed"
    return None


def _status(
    store: Store, team_id: str, user_id: str, row: SlackMemberRow | None, verb: str
) -> Answer:
    if row is None:
        return Answer(
            "You have no subscription: `/papers subscribe <what you care about>` starts one."
        )
    new = next_status(row.status, verb)
    if new is None:
        if row.status == "unsubscribed":
            return Answer(AGAIN)
        return Answer(f"Your digest is {row.status}: nothing to {verb}.")
    store.save_slack_member(team_id, user_id, status=new)
    said = {
        "paused": "Paused: no digests until `/papers resume`.",
        "active": "Resumed: your next digest comes as scheduled.",
        "unsubscribed": "Unsubscribed: no more digests. `/papers subscribe …` starts again.",
    }
    return Answer(said[new], changed=True)


_MENTION = re.compile(r"<[@#!][^>]*>")


def plain(text: str) -> str:
    """A command's text without Slack's escaped mentions (`<@U…|name>`) and entities."""
    text = _MENTION.sub("", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
