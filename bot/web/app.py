"""The web app: safety headers, the subscribe → confirm flow, and the routes (shared state in `_state`)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import tokens
from ..config import Settings
from ..store import Store, WebSubscriberRow, open_store
from ..tokens import TokenError
from ._state import HERE, Web, bad_link, fields, posted_form, web_of
from .forms import Preferences, parse_preferences, timezones
from .links import (
    feedback,
    feedback_page,
    manage,
    manage_page,
    slack_actions,
    unsubscribe,
    unsubscribe_page,
)
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
    tz = request.query_params.get("tz", "")
    prefs = Preferences(timezone=tz if tz in timezones() else "UTC")
    return web.page(request, "subscribe.html", **web.form_context(prefs, {}))


async def subscribe(request: Request) -> Response:
    """Record a subscription request and mail a confirmation link; the answer never tells more."""
    web = web_of(request)
    form = await posted_form(request)
    if isinstance(form, Response):
        return form
    chosen = [t for t in form.getlist("topics") if isinstance(t, str)]
    prefs, errors = parse_preferences(fields(form), web.topic_slugs, chosen, need_email=True)
    if errors:
        return web.page(request, "subscribe.html", 400, **web.form_context(prefs, errors))
    client = request.client.host if request.client else "unknown"
    store = web.store
    if not await run_in_threadpool(
        store.hit_rate, rate_key(web.settings, "client", client), HOUR, PER_CLIENT_PER_HOUR
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
    if await run_in_threadpool(
        store.hit_rate, rate_key(web.settings, "address", row.email), HOUR, PER_ADDRESS_PER_HOUR
    ):
        send: Callable[[WebSubscriberRow], None] = (
            web.send_confirmation if row.status == "unconfirmed" else web.send_reminder
        )
        task = BackgroundTask(send, row)
    else:
        log.info("confirmation mail not sent: the address had %d this hour", PER_ADDRESS_PER_HOUR)
    # The same page whatever the address's state, and the mail goes out after the answer, so
    # neither the page nor its timing tells whether an address is subscribed.
    response = web.page(request, "check_inbox.html", email=prefs.email)
    response.background = task
    return response


async def confirm_page(request: Request) -> Response:
    """The page a confirmation link opens: a button (mail scanners follow links, people press buttons)."""
    web = web_of(request)
    try:
        tokens.verify(
            web.settings, request.path_params["token"], "confirm", max_age=CONFIRM_MAX_AGE
        )
    except TokenError as e:
        return bad_link(request, e)
    return web.page(request, "confirm.html", action=request.url.path)


async def confirm(request: Request) -> Response:
    """Confirm a subscription: once per link, only for the request it was sent for."""
    web = web_of(request)
    form = await posted_form(request)
    if isinstance(form, Response):
        return form
    try:
        body = tokens.verify(
            web.settings, request.path_params["token"], "confirm", max_age=CONFIRM_MAX_AGE
        )
    except TokenError as e:
        return bad_link(request, e)
    sid = body["subscriber_id"]
    row = await run_in_threadpool(web.store.web_subscriber, sid)
    # A link issued before the subscriber last left (and asked again) must not bring them back.
    stale = (
        row is None
        or row.status != "unconfirmed"
        or body["issued"] < int(row.requested_at.timestamp())
    )
    # Single use: the store records a hash of each confirmation link once it is used.
    used = hashlib.sha256(request.path_params["token"].encode()).hexdigest()[:64]
    if stale or not await run_in_threadpool(web.store.use_token, used, "confirm"):
        return web.message(
            request,
            400,
            "This link was used already",
            "This confirmation link was used already or is no longer valid. "
            "If you are not subscribed yet, subscribe again to get a new one.",
            ("Subscribe", "/"),
        )
    await run_in_threadpool(web.store.set_web_status, sid, "active", only_from=("unconfirmed",))
    return RedirectResponse(
        f"/manage/{tokens.sign(web.settings, 'manage', sid)}?done=confirmed", 303
    )


async def health(request: Request) -> Response:
    """For load balancers: 200 when the app runs."""
    return PlainTextResponse("ok")


def create_app(settings: Settings, store: Store | None = None) -> Starlette:
    """The ASGI app; it opens the configured store unless one is given (and then closes it)."""
    own = store is None
    web = Web(settings, store or open_store(settings))
    if not settings.secret_key:
        tokens.sign(settings, "warning", "")  # logs the development-key warning once, at start
    if not web.signing_secret:
        log.warning("SLACK_SIGNING_SECRET is not set: /slack/actions refuses every request")

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if own:
            web.store.close()

    routes = [
        Route("/", home, methods=["GET"]),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/confirm/{token}", confirm_page, methods=["GET"]),
        Route("/confirm/{token}", confirm, methods=["POST"]),
        Route("/manage/{token}", manage_page, methods=["GET"]),
        Route("/manage/{token}", manage, methods=["POST"]),
        Route("/unsubscribe/{token}", unsubscribe_page, methods=["GET"]),
        Route("/unsubscribe/{token}", unsubscribe, methods=["POST"]),
        Route("/feedback/{token}/{vote}", feedback_page, methods=["GET"]),
        Route("/feedback/{token}/{vote}", feedback, methods=["POST"]),
        Route("/slack/actions", slack_actions, methods=["POST"]),
        Route("/healthz", health, methods=["GET"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.web = web
    app.add_middleware(SafetyHeaders)
    return app


__all__ = ["Web", "create_app"]
