"""The web app: safety headers, the subscribe → confirm flow, and the routes (shared state in `_state`)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from .. import tokens
from ..addresses import mailbox_key
from ..config import Settings
from ..slack import oauth as slack_oauth
from ..slack import routes as slack_routes
from ..store import Store, open_store
from ..tokens import TokenError
from ._state import HERE, Web, bad_link, fields, posted_form, web_of
from .feed import feed
from .forms import describe, from_chosen, parse_preferences
from .limits import BodyCap, client_of, refuse_development_key, trusted_proxies
from .links import (
    feedback,
    feedback_page,
    manage,
    manage_page,
    slack_actions,
    unsubscribe,
    unsubscribe_page,
)
from .pages import day_page, digest_page, latest, week_page
from .security import rate_key

log = logging.getLogger(__name__)
CONFIRM_MAX_AGE = 48 * 3600  # a confirmation link works for two days, once
HOUR = timedelta(hours=1)
PER_ADDRESS_PER_HOUR = 3  # confirmation emails to one address
PER_CLIENT_PER_HOUR = 20  # subscription requests from one client address

_HEADERS = [
    (
        b"content-security-policy",
        (
            b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
            b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
        ),
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),  # tokens are in our URLs: never pass them on
    (b"cache-control", b"no-store"),
]


class SafetyHeaders:
    """ASGI middleware: CSP, no framing, no referrer, no caching on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    h for h in _HEADERS if h[0] not in names
                ]
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- subscribe and confirm -------------------------------------------------------------------
async def home(request: Request) -> Response:
    """The subscribe form."""
    web = web_of(request)
    return web.page(request, "subscribe.html", **web.blank_form(request))


async def subscribe(request: Request) -> Response:
    """Record a subscription request and mail a confirmation link; the answer never tells more."""
    web = web_of(request)
    form = await posted_form(request)
    if isinstance(form, Response):
        return form
    topics = [t for t in form.getlist("topics") if isinstance(t, str)]
    prefs, errors = parse_preferences(fields(form), web.topic_slugs, topics, need_email=True)
    if errors:
        return web.page(request, "subscribe.html", 400, **web.form_context(prefs, errors))
    store = web.store
    if not await run_in_threadpool(
        store.hit_rate,
        rate_key(web.settings, "client", client_of(request)),
        HOUR,
        PER_CLIENT_PER_HOUR,
    ):
        return web.message(
            request,
            429,
            "Too many requests",
            "This network has asked for many subscriptions in the last hour. Please try again later.",
        )
    row = await run_in_threadpool(
        store.request_web_subscription,
        f"web-{secrets.token_hex(5)}",
        prefs.email,
        prefs.name,
        prefs.interests.to_dict(),
        prefs.schedule,
        prefs.timezone,
        prefs.max_items,
    )
    task: BackgroundTask | None = None
    # Counted per mailbox (`mailbox_key`): every spelling of one address shares the limit.
    if await run_in_threadpool(
        store.hit_rate,
        rate_key(web.settings, "address", mailbox_key(row.email)),
        HOUR,
        PER_ADDRESS_PER_HOUR,
    ):
        if row.status == "unconfirmed":  # new, renewed, or still pending: this request's link
            task = BackgroundTask(web.send_confirmation, row, prefs)
        else:
            task = BackgroundTask(web.send_reminder, row)
    else:
        log.info("confirmation mail not sent: the address had %d this hour", PER_ADDRESS_PER_HOUR)
    # The same page whatever the address's state, and the mail goes out after the answer, so
    # neither the page nor its timing tells whether an address is subscribed.
    response = web.page(request, "check_inbox.html", email=prefs.email)
    response.background = task
    return response


def _confirmation(request: Request) -> dict[str, Any] | TokenError:
    """The confirmation link's payload, or why it does not work (it must carry the choices)."""
    try:
        body = tokens.verify(
            web_of(request).settings,
            request.path_params["token"],
            "confirm",
            max_age=CONFIRM_MAX_AGE,
        )
    except TokenError as e:
        return e
    if not body.get("chosen"):
        return TokenError("this link is from an older version; subscribe again to get a new one")
    return body


async def confirm_page(request: Request) -> Response:
    """The page a confirmation link opens: a button (mail scanners follow links, people press buttons)."""
    web = web_of(request)
    body = _confirmation(request)
    if isinstance(body, TokenError):
        return bad_link(request, body)
    summary = describe(from_chosen(body["chosen"]))
    return web.page(request, "confirm.html", action=request.url.path, summary=summary)


async def confirm(request: Request) -> Response:
    """Confirm a subscription with the settings its link carries: once per link, only for the
    request it was sent for, only while the subscriber is unconfirmed."""
    web = web_of(request)
    form = await posted_form(request)
    if isinstance(form, Response):
        return form
    body = _confirmation(request)
    if isinstance(body, TokenError):
        return bad_link(request, body)
    sid, prefs = body["subscriber_id"], from_chosen(body["chosen"])
    # Single use: the store records a hash of each confirmation link once it is used; a link
    # issued before the subscriber last left (and asked again) must not bring them back.
    used = hashlib.sha256(request.path_params["token"].encode()).hexdigest()[:64]
    if not await run_in_threadpool(web.store.use_token, used, "confirm") or not (
        await run_in_threadpool(
            lambda: web.store.confirm_web_subscriber(
                sid,
                datetime.fromtimestamp(body["issued"] + 1, UTC),
                name=prefs.name,
                interests=prefs.interests.to_dict(),
                schedule=prefs.schedule,
                timezone=prefs.timezone,
                max_items=prefs.max_items,
            )
        )
    ):
        return web.message(
            request,
            400,
            "This link was used already",
            "This confirmation link was used already or is no longer valid. "
            "If you are not subscribed yet, subscribe again to get a new one.",
            ("Subscribe", "/"),
        )
    return RedirectResponse(
        f"/manage/{tokens.sign(web.settings, 'manage', sid)}?done=confirmed", 303
    )


async def health(request: Request) -> Response:
    """For load balancers: 200 when the app runs."""
    return PlainTextResponse("ok")


def create_app(settings: Settings, store: Store | None = None) -> Starlette:
    """The ASGI app; it opens the configured store unless one is given (and then closes it)."""
    if not settings.secret_keys:
        refuse_development_key(settings.base_url)
        tokens.sign(settings, "csrf", "")  # logs the development-key warning once, at start
    own = store is None
    web = Web(settings, store or open_store(settings))
    if not web.signing_secret:
        log.warning(
            "SLACK_SIGNING_SECRET is not set: /slack/actions, /slack/commands and /slack/events refuse every request"
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if own:
            web.store.close()

    routes = [
        Route("/", latest, methods=["GET"]),  # the latest day's papers and the subscribe form
        Route("/subscribe", home, methods=["GET"]),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/day/{day}", day_page, methods=["GET"]),
        Route("/week/{week}", week_page, methods=["GET"]),
        Route("/digest/{token}", digest_page, methods=["GET"]),
        Route("/feed/{token}.xml", feed, methods=["GET"]),
        Route("/confirm/{token}", confirm_page, methods=["GET"]),
        Route("/confirm/{token}", confirm, methods=["POST"]),
        Route("/manage/{token}", manage_page, methods=["GET"]),
        Route("/manage/{token}", manage, methods=["POST"]),
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
        Route("/feedback/{token}/{vote}", feedback_page, methods=["GET"]),
        Route("/feedback/{token}/{vote}", feedback, methods=["POST"]),
        Route("/slack/actions", slack_routes.interactivity(slack_actions), methods=["POST"]),
        Route("/slack/commands", slack_routes.commands, methods=["POST"]),
        Route("/slack/events", slack_routes.events, methods=["POST"]),
        Route("/slack/install", slack_oauth.install, methods=["GET"]),
        Route("/slack/oauth_redirect", slack_oauth.oauth_redirect, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.web = web
    app.add_middleware(BodyCap)
    proxies = trusted_proxies(settings.trusted_proxies)
    if proxies:  # X-Forwarded-For only from these (uvicorn's --forwarded-allow-ips semantics)
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    app.add_middleware(SafetyHeaders)
    return app


__all__ = ["Web", "create_app"]
