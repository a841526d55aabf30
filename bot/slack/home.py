"""App Home: the member's interests, schedule and last digest with buttons to pause, resume,
edit (a modal) and unsubscribe; and what those buttons and the modal do to the store."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..interest_input import MAX_DESCRIPTION
from ..models import Interests
from ..render import SLACK_SECTION_CHARS, cap_mrkdwn
from ..store import SlackMemberRow, Store
from .commands import next_status, phrases, show_lines, something_to_match, topic_problem
from .members import parse_when, schedule_words, subscriber_id, when_text

ACTIONS = {  # action_id → the /papers command it stands for (`commands.next_status`)
    "digestbot_home_pause": "pause",
    "digestbot_home_resume": "resume",
    "digestbot_home_unsubscribe": "unsubscribe",
}
EDIT = "digestbot_home_edit"
MODAL = "digestbot_edit"  # the edit modal's callback_id
_FIELDS = ("description", "keywords", "exclude", "topics", "authors", "schedule")
MAX_BLOCKS = 100  # Slack's limit for a view; views.publish refuses the whole view past it


def _button(text: str, action_id: str, style: str = "") -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
    }
    if style:
        button["style"] = style
    return button


def home_view(row: SlackMemberRow | None, store: Store) -> dict[str, Any]:
    """The Home tab for a member (or how to start when they have no subscription)."""
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Your paper digest"}},
        *_sections(show_lines(row), MAX_BLOCKS - 3),  # the header, last digest and buttons
    ]
    if row is not None:
        recent = store.history(subscriber_id(row.team_id, row.user_id), 10)
        last = next((d.sent_at for d in recent if d.status == "sent"), None)
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"Last digest: {when_text(last)}"}],
            }
        )
        buttons = [_button("Edit", EDIT, "primary")]
        if row.status == "active":
            buttons.append(_button("Pause", "digestbot_home_pause"))
        elif row.status == "paused":
            buttons.append(_button("Resume", "digestbot_home_resume"))
        if row.status != "unsubscribed":
            buttons.append(_button("Unsubscribe", "digestbot_home_unsubscribe", "danger"))
        blocks.append({"type": "actions", "elements": buttons})
    return {"type": "home", "blocks": blocks}


def _sections(lines: list[str], most: int) -> list[dict[str, Any]]:
    """A section per line (the last takes what is past `most`), each within Slack's 3,000
    characters (cut with "…", never inside an `&amp;`): Slack refuses a whole view for one
    section too long, and a member's interests may be longer."""
    lines = [line for line in lines if line.strip()]
    if len(lines) > most:
        lines[most - 1 :] = ["\n".join(lines[most - 1 :])]
    return [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": cap_mrkdwn(line, SLACK_SECTION_CHARS)},
        }
        for line in lines
    ]


def click(store: Store, team_id: str, user_id: str, verb: str) -> None:
    """A Pause, Resume or Unsubscribe button: the status `/papers <verb>` would set, when it
    applies (a stale Resume shown to a member who has since unsubscribed changes nothing)."""
    row = store.slack_member(team_id, user_id)
    if row is None:
        return
    new = next_status(row.status, verb)
    if new is not None and new != row.status:
        store.save_slack_member(team_id, user_id, status=new)


def _input(key: str, label: str, value: str, hint: str) -> dict[str, Any]:
    return {
        "type": "input",
        "block_id": key,
        "optional": key != "schedule",
        "label": {"type": "plain_text", "text": label},
        "hint": {"type": "plain_text", "text": hint},
        "element": {
            "type": "plain_text_input",
            "action_id": key,
            "initial_value": value,
            "multiline": key == "description",
        },
    }


def edit_modal(row: SlackMemberRow | None) -> dict[str, Any]:
    """The edit modal, filled with the member's settings."""
    i = Interests.from_dict(row.interests if row else {})
    when = _schedule_words(row)
    return {
        "type": "modal",
        "callback_id": MODAL,
        "title": {"type": "plain_text", "text": "Edit your digest"},
        "submit": {"type": "plain_text", "text": "Save"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            _input("description", "What you care about, in words", i.description, "a sentence"),
            _input("keywords", "Keywords", ", ".join(i.keywords), "comma-separated"),
            _input("exclude", "Exclude", ", ".join(i.exclude), "comma-separated"),
            _input("topics", "Topics", ", ".join(i.topics), "topic slugs, comma-separated"),
            _input("authors", "Authors", ", ".join(i.authors), "comma-separated"),
            _input("schedule", "Schedule", when, "daily 08:00 or weekly mon 08:00"),
        ],
    }


def _schedule_words(row: SlackMemberRow | None) -> str:
    """The schedule as the modal's field takes it back ("daily 08:00 Europe/Berlin")."""
    if row is None:
        return "daily 08:00"
    return f"{schedule_words(row.schedule) or 'daily 08:00'} {row.timezone}".strip()


def save_modal(
    store: Store, team_id: str, user_id: str, values: Mapping[str, Any], topics: Mapping[str, str]
) -> dict[str, str]:
    """Save the modal's fields; {block id: the fix} for each bad field (nothing saved then)."""

    def text(key: str) -> str:
        value = ((values.get(key) or {}).get(key) or {}).get("value")
        return str(value or "").strip()

    row = store.slack_member(team_id, user_id)
    interests = Interests.from_dict(row.interests if row else {}).to_dict()
    errors: dict[str, str] = {}
    interests["description"] = text("description")
    if len(interests["description"]) > MAX_DESCRIPTION:
        errors["description"] = f"keep it under {MAX_DESCRIPTION} characters"
    for key in ("keywords", "exclude", "topics", "authors"):
        got = phrases(text(key))
        if isinstance(got, str):
            errors[key] = got
            continue
        if key == "topics":
            got = tuple(g.lower() for g in got)
            problem = topic_problem(got, topics)
            if problem:
                errors[key] = problem.replace("`/papers topics` lists them", "")
                continue
        interests[key] = list(got)
    if not errors and not something_to_match(Interests.from_dict(interests)):
        errors["description"] = (
            "nothing to match on: say what you care about, or give keywords, topics or authors"
        )
    when = parse_when(text("schedule"))
    if isinstance(when, str):
        errors["schedule"] = when.replace("`/papers schedule ", "`")
    if errors:
        return {k: v[:150] for k, v in errors.items()}  # the member's text in them is escaped
    assert not isinstance(when, str)
    store.save_slack_member(
        team_id,
        user_id,
        interests=interests,
        schedule=when[0],
        timezone=when[1],
        **({} if row else {"status": "active"}),
    )
    return {}
