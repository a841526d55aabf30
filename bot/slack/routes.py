"""The Slack app's requests on `digestbot serve`: `/slack/commands` (`/papers`), `/slack/events`
(url_verification, App Home, uninstall) and App Home's buttons and modal (through the
interactivity URL, `/slack/actions`). Each answers within Slack's three seconds: the slow part
(users.info, views.publish, the response_url follow-up) runs after the answer."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from slack_sdk.errors import SlackApiError
from slack_sdk.webhook import WebhookClient
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from ..web._state import Web, web_of
from ..web.security import slack_headers_ok, slack_signature_ok
from ..zones import zone_known
from . import home, installs
from .commands import answer, plain
from .members import describe_schedule, slack_id_ok

log = logging.getLogger(__name__)
Handler = Callable[[Request], Awaitable[Response]]
EVENTS = ("app_home_opened", "app_uninstalled", "tokens_revoked")  # the manifest's bot_events
COMMAND = "/papers"


def _refuse(status: int, why: str, path: str) -> Response:
    log.warning("refused a %s request: %s", path, why)
    return PlainTextResponse(f"refused: {why}", status)


async def verified(request: Request, *, once: bool = True) -> bytes | Response:
    """The body of a genuine, fresh, first-seen Slack request, or the 4xx answer: the headers
    before the body is read, slack-sdk's signature check over it, then (`once`) the signature
    recorded once: a replay inside the five minutes is refused."""
    web = web_of(request)
    path = request.url.path
    timestamp = request.headers.get("x-slack-request-timestamp")
    signature = request.headers.get("x-slack-signature")
    ok, why = slack_headers_ok(web.signing_secret, timestamp, signature)
    if not ok:
        return _refuse(401, why, path)
    raw = await request.body()
    ok, why = slack_signature_ok(web.signing_secret, timestamp, raw, signature)
    if not ok:
        return _refuse(401, why, path)
    if once and not await first_seen(request):
        return _refuse(409, "replayed request (this signature was seen before)", path)
    return raw


async def first_seen(request: Request) -> bool:
    """Record the request's signature as used; False when it was before (a replay)."""
    stamp, signature = (
        request.headers.get(h, "") for h in ("x-slack-request-timestamp", "x-slack-signature")
    )
    nonce = "slack:" + hashlib.sha256(f"{stamp}:{signature}".encode()).hexdigest()[:58]
    return bool(await run_in_threadpool(web_of(request).store.first_slack_request, nonce))


async def _team_known(web: Web, team_id: str) -> bool:
    return slack_id_ok(team_id) and await run_in_threadpool(
        installs.known_team, web.settings, web.store, team_id
    )


def _unknown_team(web: Web, path: str) -> Response:
    return _refuse(
        403, f"unknown workspace; install digestbot first ({web.base}/slack/install)", path
    )


# --- /papers ---------------------------------------------------------------------------------
async def commands(request: Request) -> Response:
    """`/papers …`: change the member's subscription now, answer ephemerally, then look up their
    Slack time zone, refresh App Home and follow up through `response_url`."""
    web = web_of(request)
    raw = await verified(request)
    if isinstance(raw, Response):
        return raw
    form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
    team, user = form.get("team_id", ""), form.get("user_id", "")
    if not slack_id_ok(user):
        return _refuse(400, "no user_id", request.url.path)
    if not await _team_known(web, team):
        return _unknown_team(web, request.url.path)
    topics = dict(web.topics)
    said = await run_in_threadpool(
        answer, web.store, team, user, plain(form.get("text", "")), topics
    )
    response = JSONResponse({"response_type": "ephemeral", "text": said.text})
    if said.changed:
        url = form.get("response_url", "") if said.subscribed else ""
        response.background = BackgroundTask(after_change, web, team, user, url)
    return response


def after_change(web: Web, team: str, user: str, response_url: str = "") -> None:
    """After the answer: the member's Slack time zone (users.info), their App Home, and for a new
    subscription a follow-up saying when the first digest comes."""
    token = installs.team_token(web.settings, web.store, team)
    if not token:
        return
    api = installs.client(web.settings, token)
    try:
        info = api.users_info(user=user)
        zone = str((info.get("user") or {}).get("tz") or "")
        if zone and not zone_known(zone):
            log.warning(
                "users.info gave an unknown time zone %r (not in this host's tzdata); kept the "
                "member's previous one (update the tzdata package)",
                zone[:60],
            )
            zone = ""
        row = web.store.slack_member(team, user)
        if zone and row is not None and zone != row.slack_timezone:
            web.store.save_slack_member(team, user, slack_timezone=zone)
    except (SlackApiError, OSError) as e:
        log.warning("users.info for a Slack member failed: %s", _why(e))
    publish_home(web, team, user)
    row = web.store.slack_member(team, user)
    if response_url and row is not None:
        whose = "your Slack time zone" if not row.timezone else "the time zone you set"
        text = f"Your digest comes {describe_schedule(row.schedule, row.zone)} — {whose}."
        try:
            WebhookClient(response_url, timeout=installs.TIMEOUT).send(
                text=text, response_type="ephemeral"
            )
        except OSError as e:
            log.warning("the /papers follow-up was not sent: %s", _why(e))


def publish_home(web: Web, team: str, user: str) -> None:
    """views.publish the member's Home tab (errors are logged: the next opening tries again)."""
    token = installs.team_token(web.settings, web.store, team)
    if not token:
        return
    view = home.home_view(web.store.slack_member(team, user), web.store)
    try:
        installs.client(web.settings, token).views_publish(user_id=user, view=view)
    except (SlackApiError, OSError) as e:
        log.warning("views.publish failed: %s", _why(e))


def _why(e: Exception) -> str:
    if isinstance(e, SlackApiError) and e.response is not None:
        return str(e.response.get("error") or e.response.status_code)
    return type(e).__name__


# --- Events API --------------------------------------------------------------------------------
async def events(request: Request) -> Response:
    """The Events API: the url_verification challenge, app_home_opened (publish the Home tab
    after the answer), app_uninstalled and tokens_revoked (delete the tokens, stop digests)."""
    web = web_of(request)
    raw = await verified(request)
    if isinstance(raw, Response):
        return raw
    try:
        body = json.loads(raw)
    except ValueError:
        return _refuse(400, "not JSON", request.url.path)
    if not isinstance(body, dict):
        return _refuse(400, "not a JSON object", request.url.path)
    if body.get("type") == "url_verification":
        return JSONResponse({"challenge": str(body.get("challenge", ""))})
    team = str(body.get("team_id", ""))
    event = body.get("event") if isinstance(body.get("event"), dict) else {}
    assert isinstance(event, dict)
    if not await _team_known(web, team):
        return _unknown_team(web, request.url.path)
    kind = event.get("type")
    task: BackgroundTask | None = None
    if kind == "app_home_opened" and event.get("tab", "home") == "home":
        user = str(event.get("user", ""))
        if slack_id_ok(user):
            task = BackgroundTask(after_change, web, team, user)  # their time zone, then Home
    elif kind == "app_uninstalled" or (
        kind == "tokens_revoked" and (event.get("tokens") or {}).get("bot")
    ):
        await run_in_threadpool(installs.uninstall, web.settings, web.store, team)
    response = Response(status_code=200)
    response.background = task
    return response


# --- App Home's buttons and modal (the interactivity URL) ---------------------------------------
def interactivity(votes: Handler) -> Handler:
    """The interactivity URL's handler: App Home's buttons and the edit modal here, every other
    payload (the digest's 👍/👎) to `votes`, which reads the same (cached) body."""

    async def handle(request: Request) -> Response:
        web = web_of(request)
        raw = await verified(request, once=False)  # a vote may be clicked twice in one second
        if isinstance(raw, Response):
            return raw
        try:
            payload = json.loads(parse_qs(raw.decode())["payload"][0])
        except (KeyError, ValueError, UnicodeDecodeError):
            return _refuse(400, "no payload", request.url.path)
        if not isinstance(payload, dict) or not _ours(payload):
            return await votes(request)
        if not await first_seen(request):
            return _refuse(
                409, "replayed request (this signature was seen before)", request.url.path
            )
        team = str((payload.get("team") or {}).get("id") or "")
        user = str((payload.get("user") or {}).get("id") or "")
        if not slack_id_ok(user):
            return _refuse(400, "no user", request.url.path)
        if not await _team_known(web, team):
            return _unknown_team(web, request.url.path)
        if payload.get("type") == "view_submission":
            values = ((payload.get("view") or {}).get("state") or {}).get("values") or {}
            errors = await run_in_threadpool(
                home.save_modal, web.store, team, user, values, dict(web.topics)
            )
            if errors:
                return JSONResponse({"response_action": "errors", "errors": errors})
            return Response(
                status_code=200, background=BackgroundTask(publish_home, web, team, user)
            )
        action = str(((payload.get("actions") or [{}])[0] or {}).get("action_id", ""))
        if action == home.EDIT:
            trigger = str(payload.get("trigger_id", ""))
            return Response(
                status_code=200, background=BackgroundTask(open_editor, web, team, user, trigger)
            )
        await run_in_threadpool(home.click, web.store, team, user, home.ACTIONS[action])
        return Response(status_code=200, background=BackgroundTask(publish_home, web, team, user))

    return handle


def _ours(payload: dict[str, Any]) -> bool:
    """An App Home button or the edit modal (anything else is a digest's vote)."""
    if payload.get("type") == "view_submission":
        return (payload.get("view") or {}).get("callback_id") == home.MODAL
    actions = payload.get("actions")
    if payload.get("type") != "block_actions" or not isinstance(actions, list) or not actions:
        return False
    first = actions[0] if isinstance(actions[0], dict) else {}
    return first.get("action_id") in (*home.ACTIONS, home.EDIT)


def open_editor(web: Web, team: str, user: str, trigger_id: str) -> None:
    """views.open the edit modal (the trigger is good for three seconds: right after the answer)."""
    token = installs.team_token(web.settings, web.store, team)
    if not token:
        return
    view = home.edit_modal(web.store.slack_member(team, user))
    try:
        installs.client(web.settings, token).views_open(trigger_id=trigger_id, view=view)
    except (SlackApiError, OSError) as e:
        log.warning("views.open failed: %s", _why(e))
