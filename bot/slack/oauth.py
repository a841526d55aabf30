"""Installing the app into a workspace: `/slack/install` (a state from slack-sdk's state store,
bound to the browser by a cookie, then Slack's authorize page) and `/slack/oauth_redirect`
(the state used once, oauth.v2.access, the installation saved with its bot token)."""

from __future__ import annotations

import logging
from datetime import timedelta

from slack_sdk.errors import SlackApiError
from slack_sdk.oauth import AuthorizeUrlGenerator, OAuthStateUtils
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..web._state import Web, web_of
from ..web.limits import client_of
from ..web.security import rate_key
from . import installs

log = logging.getLogger(__name__)
AUTHORIZE_URL = "https://slack.com/oauth/v2/authorize"
COOKIE = OAuthStateUtils.default_cookie_name
INSTALLS_PER_CLIENT_PER_HOUR = 20  # each writes a state row: a stranger cannot fill the table
HOUR = timedelta(hours=1)


def _redirect_uri(web: Web) -> str:
    return f"{web.base}/slack/oauth_redirect"


def _not_set_up(request: Request) -> Response:
    return web_of(request).message(
        request,
        404,
        "Installing is not set up",
        "This digestbot installs into one workspace only. To let any workspace add it, set "
        "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (the Slack app's Basic Information page).",
    )


async def install(request: Request) -> Response:
    """Start an install: a fresh state (kept ten minutes, used once) and Slack's authorize page."""
    web = web_of(request)
    cid = installs.client_id(web.settings)
    if not cid or not web.settings.environ.get("SLACK_CLIENT_SECRET"):
        return _not_set_up(request)
    key = rate_key(web.settings, "slack-install", client_of(request))
    if not await run_in_threadpool(web.store.hit_rate, key, HOUR, INSTALLS_PER_CLIENT_PER_HOUR):
        return web.message(
            request, 429, "Too many requests", "Too many installs started here; try again later."
        )
    await run_in_threadpool(web.store.forget_expired_slack_states)
    state = await run_in_threadpool(installs.state_store(web.store).issue)
    url = AuthorizeUrlGenerator(
        client_id=cid,
        redirect_uri=_redirect_uri(web),
        scopes=list(installs.SCOPES),
        authorization_url=AUTHORIZE_URL,
    ).generate(state)
    response = RedirectResponse(url, 302)
    response.set_cookie(
        COOKIE,
        state,
        max_age=installs.STATE_SECONDS,
        httponly=True,
        secure=web.secure_cookies,
        samesite="lax",
        path="/slack/",
    )
    return response


async def oauth_redirect(request: Request) -> Response:
    """Finish an install: the state must be this browser's and unused; the code is exchanged
    for the workspace's bot token, which goes into the database (never a log or a page)."""
    web = web_of(request)
    cid = installs.client_id(web.settings)
    secret = web.settings.environ.get("SLACK_CLIENT_SECRET", "")
    if not cid or not secret:
        return _not_set_up(request)
    params = request.query_params
    if params.get("error"):
        return _failed(request, f"Slack said {params['error'][:50]}; try again")
    state, code = params.get("state", ""), params.get("code", "")
    cookie_ok = OAuthStateUtils(cookie_name=COOKIE).is_valid_browser(
        state, {"cookie": request.headers.get("cookie", "")}
    )
    if not (state and code and cookie_ok):
        return _failed(request, "this link is not from an install started in this browser")
    if not await run_in_threadpool(installs.state_store(web.store).consume, state):
        return _failed(request, "this install link was used already or expired")
    try:
        answer = await run_in_threadpool(
            lambda: installs.client(web.settings, None).oauth_v2_access(
                client_id=cid, client_secret=secret, code=code, redirect_uri=_redirect_uri(web)
            )
        )
    except (SlackApiError, OSError) as e:
        why = e.response.get("error") if isinstance(e, SlackApiError) else type(e).__name__
        log.warning("oauth.v2.access failed: %s", why)
        return _failed(request, f"Slack refused the install ({why})")
    data = dict(answer.data) if isinstance(answer.data, dict) else {}
    saved = await run_in_threadpool(installs.save_installation, web.settings, web.store, data)
    log.info("installed into the Slack workspace %s", saved.team_id)
    response = web.message(
        request,
        200,
        "digestbot is installed",
        f"digestbot is now in the workspace {saved.team_name or saved.team_id}. "
        "In Slack, type /papers help to subscribe.",
    )
    response.delete_cookie(COOKIE, path="/slack/")
    return response


def _failed(request: Request, why: str) -> Response:
    return web_of(request).message(
        request,
        400,
        "The install did not finish",
        f"{why}. Start again from the install page.",
        ("Install", "/slack/install"),
    )
