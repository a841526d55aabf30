"""Workspaces and their bot tokens: slack-sdk's SQLAlchemy installation and OAuth state stores on
digestbot's database (tables in `store._schema`, revision 0004), the token for a team (an
installation's, else `SLACK_BOT_TOKEN` for its one workspace), the Web API client, uninstall."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.oauth.installation_store.models.installation import Installation

from ..config import Settings
from ..store import Store

if TYPE_CHECKING:  # imported when used: they pull in SQLAlchemy's asyncio, which a run never needs
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

log = logging.getLogger(__name__)
TIMEOUT = 10  # seconds per Web API call made while a person waits (App Home, the OAuth redirect)
STATE_SECONDS = 600  # an install link works for ten minutes
# What the app asks for: the slash command, DMs (open, post, read back for the crash check),
# time zones, and the channel scopes of channel digests. deploy/slack-app-manifest.yaml lists
# the same (tests/test_deploy.py holds them together).
SCOPES = (
    "commands",
    "chat:write",
    "im:write",
    "im:history",
    "users:read",
    "channels:read",
    "groups:read",
    "channels:history",
    "groups:history",
)
_single_team: dict[
    tuple[str, str], str
] = {}  # (API URL, SLACK_BOT_TOKEN) → its team id (auth.test)
_lock = threading.Lock()


def client_id(settings: Settings) -> str:
    """SLACK_CLIENT_ID, or "" when the app is not set up for installs (one workspace only)."""
    return settings.environ.get("SLACK_CLIENT_ID", "").strip()


def client(settings: Settings, token: str | None, timeout: int = TIMEOUT) -> WebClient:
    """A Web API client at the configured API URL (DIGESTBOT_SLACK_API_URL in tests)."""
    return WebClient(token=token or None, base_url=settings.slack_api_url, timeout=timeout)


def installation_store(settings: Settings, store: Store) -> SQLAlchemyInstallationStore:
    """slack-sdk's installation store on digestbot's database (its tables already migrated)."""
    from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore

    return SQLAlchemyInstallationStore(
        client_id=client_id(settings) or "digestbot", engine=store.engine
    )


def state_store(store: Store) -> SQLAlchemyOAuthStateStore:
    """slack-sdk's OAuth state store on digestbot's database: a state is used once."""
    from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

    return SQLAlchemyOAuthStateStore(expiration_seconds=STATE_SECONDS, engine=store.engine)


def enterprises(istore: SQLAlchemyInstallationStore, team_id: str) -> list[str | None]:
    """The enterprise ids stored with this team's installations, newest first (None for a
    workspace outside an Enterprise Grid): slack-sdk looks up by (enterprise, team) and turns
    enterprise None into `IS NULL`, while requests and the DM sender know the team only."""
    from sqlalchemy import select

    found: list[tuple[Any, str | None]] = []
    with istore.engine.connect() as conn:
        for table in (istore.bots, istore.installations):
            c = table.c
            query = select(c.installed_at, c.enterprise_id).where(
                c.client_id == istore.client_id, c.team_id == team_id
            )
            found += [(row[0], row[1]) for row in conn.execute(query)]
    found.sort(key=lambda r: r[0], reverse=True)
    return list(dict.fromkeys(enterprise for _, enterprise in found))


def installed_token(settings: Settings, store: Store, team_id: str) -> str:
    """The bot token an installation left for this team (inside an Enterprise Grid or not), or ""."""
    istore = installation_store(settings, store)
    for enterprise in enterprises(istore, team_id):
        bot = istore.find_bot(enterprise_id=enterprise, team_id=team_id)
        if bot is not None and bot.bot_token:
            return str(bot.bot_token)
    return ""


def single_team(settings: Settings) -> str:
    """The team SLACK_BOT_TOKEN belongs to (auth.test, once per process), or "" when not set or
    Slack does not answer."""
    token = settings.slack_token
    if not token:
        return ""
    key = (settings.slack_api_url, token)
    with _lock:
        if key in _single_team:
            return _single_team[key]
    try:
        team = str(client(settings, token, timeout=2).auth_test().get("team_id") or "")
    except (SlackApiError, OSError) as e:
        log.warning("auth.test with SLACK_BOT_TOKEN failed (%s); check the token", type(e).__name__)
        return ""
    with _lock:
        _single_team[key] = team
    return team


def team_token(settings: Settings, store: Store, team_id: str) -> str:
    """The bot token for a team: its installation's, else SLACK_BOT_TOKEN when no workspace was
    installed through OAuth (the one-workspace setup) or it is that token's team; "" if none."""
    token = installed_token(settings, store, team_id)
    if token:
        return token
    if not settings.slack_token:
        return ""
    if not client_id(settings) or single_team(settings) == team_id:
        return settings.slack_token
    return ""


def known_team(settings: Settings, store: Store, team_id: str) -> bool:
    """Whether requests from this team are served: it has an installation, or is SLACK_BOT_TOKEN's."""
    if installed_token(settings, store, team_id):
        return True
    return bool(settings.slack_token) and single_team(settings) == team_id


def save_installation(settings: Settings, store: Store, answer: dict[str, Any]) -> Installation:
    """Keep what oauth.v2.access answered (the bot token in the database only); members of the
    team moved aside by an earlier uninstall receive digests again."""
    team = answer.get("team") or {}
    enterprise = answer.get("enterprise") or {}
    user = answer.get("authed_user") or {}
    installation = Installation(
        app_id=answer.get("app_id"),
        enterprise_id=enterprise.get("id"),
        enterprise_name=enterprise.get("name"),
        team_id=team.get("id"),
        team_name=team.get("name"),
        bot_token=answer.get("access_token"),
        bot_id=answer.get("bot_id"),
        bot_user_id=answer.get("bot_user_id"),
        bot_scopes=str(answer.get("scope") or ""),
        user_id=str(user.get("id") or ""),
        user_token=user.get("access_token"),
        user_scopes=str(user.get("scope") or ""),
        is_enterprise_install=bool(answer.get("is_enterprise_install")),
        token_type=answer.get("token_type"),
    )
    istore = installation_store(settings, store)
    istore.delete_installation(
        enterprise_id=installation.enterprise_id, team_id=installation.team_id
    )
    istore.delete_bot(enterprise_id=installation.enterprise_id, team_id=installation.team_id)
    istore.save(installation)
    if installation.team_id:
        store.set_slack_team_status(installation.team_id, "uninstalled", "active")
    return installation


def uninstall(settings: Settings, store: Store, team_id: str) -> int:
    """Delete the team's tokens and stop its members' digests; how many members were stopped."""
    istore = installation_store(settings, store)
    for enterprise in enterprises(istore, team_id) or [None]:
        istore.delete_installation(enterprise_id=enterprise, team_id=team_id)
        istore.delete_bot(enterprise_id=enterprise, team_id=team_id)
    stopped = store.set_slack_team_status(team_id, "active", "uninstalled")
    log.info("Slack workspace %s uninstalled: tokens deleted, %d members stopped", team_id, stopped)
    return stopped
