"""The web app: shared state, page rendering, safety headers, and the subscribe → confirm flow."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import tokens
from ..config import Settings
from ..errors import BotError
from ..roster import interests_data
from ..store import Store, WebSubscriberRow
from ..tokens import TokenError
from . import mailer
from .forms import Preferences, parse_preferences, timezones
from .security import CSRF_COOKIE, CSRF_FIELD, csrf_ok, csrf_valid, new_csrf, rate_key

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
CONFIRM_MAX_AGE = 48 * 3600  # a confirmation link works for two days, once
MANAGE_MAX_AGE = 365 * 24 * 3600  # the manage link in a digest works for a year
HOUR = timedelta(hours=1)
PER_ADDRESS_PER_HOUR = 3  # confirmation emails to one address
PER_CLIENT_PER_HOUR = 20  # subscription requests from one client address
MAX_BODY = 64 * 1024  # no form of ours is bigger

_HEADERS = [
    (b"content-security-policy", (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
                                  b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")),
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
                message["headers"] = list(message.get("headers", [])) + [h for h in _HEADERS if h[0] not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class Web:
    """What every request handler shares: settings, store, templates and the topic list."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.base = settings.base_url.rstrip("/")
        self.signing_secret = settings.environ.get("SLACK_SIGNING_SECRET", "")
        self.secure_cookies = self.base.startswith("https://")
        self.env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True,
                               undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
        self.topics = topic_choices()
        self.topic_slugs = {slug for slug, _ in self.topics}

    def page(self, request: Request, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        """Render a page, with a CSRF token in the context and (when new) in a cookie."""
        token = request.cookies.get(CSRF_COOKIE)
        fresh = not csrf_valid(self.settings, token)
        if fresh or token is None:
            token = new_csrf(self.settings)
        html = self.env.get_template(template).render(csrf=token, csrf_field=CSRF_FIELD, **ctx)
        response = HTMLResponse(html, status_code=status)
        if fresh:
            response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="lax", secure=self.secure_cookies, path="/")
        return response

    def message(self, request: Request, status: int, title: str, text: str, link: tuple[str, str] | None = None) -> HTMLResponse:
        """A page that says one thing (errors, confirmations)."""
        return self.page(request, "message.html", status, title=title, text=text, link=link)

    def link(self, kind: str, subscriber_id: str) -> str:
        """An absolute signed link: /manage/…, /unsubscribe/… or /confirm/…."""
        return f"{self.base}/{kind}/{tokens.sign(self.settings, kind, subscriber_id)}"

    def form_context(self, prefs: Preferences, errors: dict[str, str]) -> dict[str, Any]:
        """What the subscribe and manage forms need to show `prefs`."""
        return {"prefs": prefs, "errors": errors, "topics": self.topics, "timezones": timezones()}

    # --- mail sent from background tasks: failures are logged, never shown (they would tell) ----
    def send_confirmation(self, row: WebSubscriberRow) -> None:
        """Mail the confirmation link to an unconfirmed subscriber."""
        text = (f"Someone, probably you, asked to receive digestbot's paper digest at {row.email}.\n\n"
                f"To confirm, open this link within two days and press the button:\n\n"
                f"  {self.link('confirm', row.id)}\n\n"
                "If it was not you, ignore this message: you will receive nothing else.\n")
        self._mail(row.email, "Confirm your digestbot subscription", text)

    def send_reminder(self, row: WebSubscriberRow) -> None:
        """Tell a subscriber who asked again that they are subscribed, with the manage link."""
        text = (f"Someone, probably you, asked to subscribe {row.email} to digestbot's paper digest.\n"
                "This address already has a subscription, so nothing was changed.\n\n"
                f"To change your interests, pause or unsubscribe:\n\n  {self.link('manage', row.id)}\n\n"
                "If it was not you, ignore this message.\n")
        self._mail(row.email, "Your digestbot subscription", text)

    def _mail(self, to: str, subject: str, text: str) -> None:
        try:
            mailer.send(self.settings, mailer.build(self.settings, to, subject, text))
        except BotError as e:
            log.error("could not send %r to a subscriber: %s", subject, e)


def topic_choices() -> list[tuple[str, str]]:
    """(slug, name) of every topic in the taxonomy; empty when the matcher has none."""
    try:
        try:
            from ..match.topics import (
                load_topics,  # the taxonomy with names, where the matcher has one
            )

            return [(t.slug, t.name) for t in load_topics()]
        except ImportError:
            from ..match import known_topics

            return [(slug, slug) for slug in sorted(known_topics() or ())]
    except BotError as e:
        log.error("the subscribe form offers no topics: %s", e)
        return []


def web_of(request: Request) -> Web:
    """The app's shared `Web`."""
    web: Web = request.app.state.web
    return web


async def read_form(request: Request) -> FormData | None:
    """The posted form, or None when it is too large to be one of ours."""
    if int(request.headers.get("content-length") or 0) > MAX_BODY:
        return None
    return await request.form(max_files=0, max_fields=200)


async def posted_form(request: Request) -> FormData | Response:
    """The posted form of one of our pages, or the answer when it is too large or lacks its CSRF token."""
    form = await read_form(request)
    if form is None:
        return PlainTextResponse("request too large", 413)
    if not csrf_passed(request, form):
        return forged(request)
    return form


def fields(form: FormData) -> dict[str, str]:
    """The form's text fields (the first value of each)."""
    return {k: v for k, v in form.items() if isinstance(v, str)}


def csrf_passed(request: Request, form: FormData) -> bool:
    """The form carries the same valid CSRF token as the cookie."""
    value = form.get(CSRF_FIELD)
    return csrf_ok(web_of(request).settings, request.cookies.get(CSRF_COOKIE), value if isinstance(value, str) else None)


def forged(request: Request) -> HTMLResponse:
    """The answer to a form without a valid CSRF token."""
    return web_of(request).message(request, 403, "Please try again",
                                   "This form had expired or did not come from this site. Reload the page and send it again.")


def bad_link(request: Request, error: TokenError) -> HTMLResponse:
    """The answer to a forged, wrong or expired link."""
    return web_of(request).message(request, 400, "This link does not work", str(error).capitalize() + ".")


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
    if not await run_in_threadpool(store.hit_rate, rate_key(web.settings, "client", client), HOUR, PER_CLIENT_PER_HOUR):
        return web.message(request, 429, "Too many requests",
                           "This network has asked for many subscriptions in the last hour. Please try again later.")
    row = await run_in_threadpool(
        store.request_web_subscription, f"web-{secrets.token_hex(5)}", prefs.email, prefs.name,
        interests_data(prefs.interests), prefs.schedule, prefs.timezone, prefs.max_items)
    task: BackgroundTask | None = None
    if await run_in_threadpool(store.hit_rate, rate_key(web.settings, "address", row.email), HOUR, PER_ADDRESS_PER_HOUR):
        send: Callable[[WebSubscriberRow], None] = web.send_confirmation if row.status == "unconfirmed" else web.send_reminder
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
        tokens.verify(web.settings, request.path_params["token"], "confirm", max_age=CONFIRM_MAX_AGE)
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
        body = tokens.verify(web.settings, request.path_params["token"], "confirm", max_age=CONFIRM_MAX_AGE)
    except TokenError as e:
        return bad_link(request, e)
    sid = body["subscriber_id"]
    row = await run_in_threadpool(web.store.web_subscriber, sid)
    # A link issued before the subscriber last left (and asked again) must not bring them back.
    stale = row is None or row.status != "unconfirmed" or body["issued"] < int(row.requested_at.timestamp())
    # Single use: the store records a hash of each confirmation link once it is used.
    used = hashlib.sha256(request.path_params["token"].encode()).hexdigest()[:64]
    if stale or not await run_in_threadpool(web.store.use_token, used, "confirm"):
        return web.message(request, 400, "This link was used already",
                           "This confirmation link was used already or is no longer valid. "
                           "If you are not subscribed yet, subscribe again to get a new one.", ("Subscribe", "/"))
    await run_in_threadpool(web.store.set_web_status, sid, "active", only_from=("unconfirmed",))
    return RedirectResponse(f"/manage/{tokens.sign(web.settings, 'manage', sid)}?done=confirmed", 303)


async def health(request: Request) -> Response:
    """For load balancers: 200 when the app runs."""
    return PlainTextResponse("ok")


def create_app(settings: Settings, store: Store | None = None) -> Starlette:
    """The ASGI app; it opens the configured store unless one is given (and then closes it)."""
    from .links import (
        feedback,
        feedback_page,
        manage,
        manage_page,
        slack_actions,
        unsubscribe,
        unsubscribe_page,
    )

    own = store is None
    web = Web(settings, store or Store(settings.database_url, settings.database_sqlite_synchronous))
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
