"""Slack members (who subscribed with /papers), always looked up by (team id, user id)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from ._base import StoreBase, _again_on_conflict, _now
from ._schema import slack_members, slack_oauth_states, used_tokens

SEEN_FOR = timedelta(minutes=10)  # a Slack request older than five minutes is refused anyway
MEMBER_STATES = ("active", "paused", "unsubscribed", "uninstalled")
DEFAULT_SCHEDULE = "0 8 * * *"
DEFAULT_MAX_ITEMS = 10


@dataclass(frozen=True, slots=True)
class SlackMemberRow:
    """A Slack member's subscription as the store holds it (interests as a dict)."""

    team_id: str
    user_id: str
    interests: dict[str, Any]
    schedule: str
    timezone: str  # set by the member; "" means their Slack time zone
    slack_timezone: str  # from users.info; "" when not yet known
    max_items: int
    status: str
    created_at: datetime
    updated_at: datetime

    @property
    def zone(self) -> str:
        """The time zone their digest follows: their own, else Slack's, else UTC."""
        return self.timezone or self.slack_timezone or "UTC"


def _row(r: Any) -> SlackMemberRow:
    return SlackMemberRow(
        team_id=r.team_id,
        user_id=r.user_id,
        interests=json.loads(r.interests),
        schedule=r.schedule,
        timezone=r.timezone,
        slack_timezone=r.slack_timezone,
        max_items=r.max_items,
        status=r.status,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


def _key(team_id: str, user_id: str) -> Any:
    return and_(slack_members.c.team_id == team_id, slack_members.c.user_id == user_id)


class SlackRecords(StoreBase):
    """What bot.slack and bot.roster keep about Slack members; the team id is in every lookup."""

    def slack_member(self, team_id: str, user_id: str) -> SlackMemberRow | None:
        """One member of one workspace."""
        with self.begin() as conn:
            r = conn.execute(select(slack_members).where(_key(team_id, user_id))).first()
        return None if r is None else _row(r)

    def slack_members(self, *statuses: str, team_id: str | None = None) -> list[SlackMemberRow]:
        """Members in the given states (all when none given), of one team or all, oldest first."""
        q = select(slack_members)
        if statuses:
            q = q.where(slack_members.c.status.in_(statuses))
        if team_id is not None:
            q = q.where(slack_members.c.team_id == team_id)
        q = q.order_by(slack_members.c.created_at, slack_members.c.team_id, slack_members.c.user_id)
        with self.begin() as conn:
            return [_row(r) for r in conn.execute(q)]

    @_again_on_conflict  # two first commands at once: the second try updates the new row
    def save_slack_member(self, team_id: str, user_id: str, **changes: Any) -> SlackMemberRow:
        """Create the member (active, daily at 08:00) or change the given columns; `interests`
        is a dict. Returns the row as saved."""
        values = dict(changes)
        if "interests" in values:
            values["interests"] = json.dumps(values["interests"], ensure_ascii=False)
        now = _now()
        with self.begin() as conn:
            found = conn.execute(
                select(slack_members.c.user_id).where(_key(team_id, user_id))
            ).first()
            if found is None:
                row = {
                    "team_id": team_id,
                    "user_id": user_id,
                    "interests": "{}",
                    "schedule": DEFAULT_SCHEDULE,
                    "timezone": "",
                    "slack_timezone": "",
                    "max_items": DEFAULT_MAX_ITEMS,
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                }
                conn.execute(insert(slack_members).values({**row, **values}))
            else:
                conn.execute(
                    update(slack_members)
                    .where(_key(team_id, user_id))
                    .values(**values, updated_at=now)
                )
            r = conn.execute(select(slack_members).where(_key(team_id, user_id))).one()
        return _row(r)

    def set_slack_team_status(self, team_id: str, old: str, new: str) -> int:
        """Move every member of a team from `old` to `new` (uninstall, reinstall); how many."""
        with self.begin() as conn:
            result = conn.execute(
                update(slack_members)
                .where(and_(slack_members.c.team_id == team_id, slack_members.c.status == old))
                .values(status=new, updated_at=_now())
            )
        return int(result.rowcount or 0)

    def slack_members_changed(self) -> tuple[int, datetime | None]:
        """(how many members, their latest `updated_at`), for a watcher (one aggregate query)."""
        with self.begin() as conn:
            count, latest = conn.execute(
                select(func.count(), func.max(slack_members.c.updated_at))
            ).one()
        return int(count), latest

    def first_slack_request(self, nonce: str, now: datetime | None = None) -> bool:
        """Record a Slack request's signature (`nonce`, a hash of it) as seen; False when it was
        (a replay). Signatures older than `SEEN_FOR` are forgotten on the way: their timestamps
        are refused before this is asked."""
        now = now or _now()
        try:
            with self.begin() as conn:
                conn.execute(
                    delete(used_tokens).where(
                        and_(used_tokens.c.kind == "slack", used_tokens.c.used_at < now - SEEN_FOR)
                    )
                )
                conn.execute(insert(used_tokens).values(nonce=nonce, kind="slack", used_at=now))
        except IntegrityError:
            return False
        return True

    def forget_expired_slack_states(self, now: datetime | None = None) -> int:
        """Delete install states past their expiry (slack-sdk deletes a state only when it is
        used, so abandoned installs would pile up); how many went."""
        naive_utc = (now or _now()).replace(tzinfo=None)  # slack-sdk stores naive UTC times
        with self.begin() as conn:
            done = conn.execute(
                delete(slack_oauth_states).where(slack_oauth_states.c.expire_at < naive_utc)
            )
        return int(done.rowcount or 0)
