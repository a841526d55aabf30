"""What every web handler shares: the `Web` object (settings, store, templates, topics), `web_of`,
and the form, CSRF and bad-link helpers that app.py and links.py both use."""

from __future__ import annotations

import logging
import re
import secrets
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response

from .. import tokens
from ..config import Settings
from ..errors import BotError
from ..models import Subscriber
from ..roster import file_subscriber
from ..store import Store, WebSubscriberRow
from ..text import printable
from ..tokens import TokenError
from .forms import Preferences, chosen, describe, timezones
from .mailer import build as build_mail
from .mailer import send as send_mail
from .security import CSRF_COOKIE, CSRF_FIELD, csrf_ok, csrf_valid, new_csrf

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
MANAGE_MAX_AGE = 365 * 24 * 3600  # the manage link in a digest works for a year
# C0 controls but tab, newline and carriage return, and DEL: never typed into a form.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class Web:
    """What every request handler shares: settings, store, templates and the topic list."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.base = settings.base_url.rstrip("/")
        self.signing_secret = settings.environ.get("SLACK_SIGNING_SECRET", "")
        self.secure_cookies = settings.https_links
        self.env = Environment(
            loader=FileSystemLoader(str(HERE / "templates")),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.topics = topic_choices(settings.topics_file)
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
            response.set_cookie(
                CSRF_COOKIE,
                token,
                httponly=True,
                samesite="lax",
                secure=self.secure_cookies,
                path="/",
            )
        return response

    def message(
        self,
        request: Request,
        status: int,
        title: str,
        text: str,
        link: tuple[str, str] | None = None,
    ) -> HTMLResponse:
        """A page that says one thing (errors, confirmations)."""
        return self.page(request, "message.html", status, title=title, text=text, link=link)

    def link(
        self,
        kind: str,
        subscriber_id: str,
        chosen: dict[str, Any] | None = None,
        address: str = "",
    ) -> str:
        """An absolute signed link: /manage/…, /unsubscribe/…, /feed/… or /confirm/… (with
        `chosen`); `address` binds it to the address it was made for."""
        token = tokens.sign(self.settings, kind, subscriber_id, chosen=chosen, address=address)
        return f"{self.base}/{kind}/{token}"

    def form_context(self, prefs: Preferences, errors: dict[str, str]) -> dict[str, Any]:
        """What the subscribe and manage forms need to show `prefs`."""
        return {
            "prefs": prefs,
            "errors": errors,
            "topics": self.topics,
            "timezones": timezones(),
            "zone_given": False,  # a time zone the page must keep (`blank_form`)
        }

    def blank_form(self, request: Request) -> dict[str, Any]:
        """The empty subscribe form: its time zone from `?tz=` when that names a known zone (a
        sign-up link for one place), kept over the browser's; else UTC, which the page's script
        replaces with the browser's zone."""
        tz = request.query_params.get("tz", "")
        given = tz in timezones()
        prefs = Preferences(timezone=tz if given else "UTC")
        return {**self.form_context(prefs, {}), "zone_given": given}

    def file_subscriber(self, sid: str) -> Subscriber | None:
        """The subscriber of `subscriptions/<sid>.toml` as the file says now, or None."""
        # The taxonomy as read at start (none read: read it now, as `check` and `run` do).
        return file_subscriber(self.settings, sid, self.topic_slugs or None)

    def link_controls(self, sid: str, address: str) -> bool:
        """Whether a link mailed to `address` may act for file subscriber `sid`: the file still
        names that address (a link without one, from before links carried it, still may)."""
        if not address:
            return True
        sub = self.file_subscriber(sid)
        return sub is not None and sub.email.strip().lower() == address.strip().lower()

    def link_reads(self, sid: str, address: str) -> bool:
        """Whether a link mailed to `address` may show `sid`'s subscription or feed: a web
        subscriber's (its row is its address's), or a file subscriber's that still names it."""
        return self.store.web_subscriber(sid) is not None or self.link_controls(sid, address)

    # --- mail sent from background tasks: failures are logged, never shown (they would tell) ----
    def send_confirmation(self, row: WebSubscriberRow, prefs: Preferences) -> None:
        """Mail an unconfirmed subscriber the link that confirms this request's `prefs`.

        Each request's link is its own (a nonce in it): once used, a link for the same choices
        asked again in the same second is not the used one.
        """
        text = (
            f"Someone, probably you, asked to receive digestbot's paper digest at {row.email}.\n"
            f"They chose: {describe(prefs, words=False)} (the link shows them in full).\n\n"
            f"To confirm these choices, open this link within two days and press the button:\n\n"
            f"  {self.link('confirm', row.id, {**chosen(prefs), 'r': secrets.token_urlsafe(6)})}\n\n"
            "If it was not you, ignore this message: you will receive nothing else.\n"
        )
        self._mail(row.email, "Confirm your digestbot subscription", text)

    def send_reminder(self, row: WebSubscriberRow) -> None:
        """Tell a subscriber who asked again that they are subscribed, with the manage link."""
        text = (
            f"Someone, probably you, asked to subscribe {row.email} to digestbot's paper digest.\n"
            "This address already has a subscription, so nothing was changed.\n\n"
            f"To change your interests, pause or unsubscribe:\n\n  {self.link('manage', row.id)}\n\n"
            "If it was not you, ignore this message.\n"
        )
        self._mail(row.email, "Your digestbot subscription", text)

    def _mail(self, to: str, subject: str, text: str) -> None:
        try:
            send_mail(self.settings, build_mail(self.settings, to, subject, text))
        except BotError as e:
            log.error("could not send %r to a subscriber: %s", subject, e)


def topic_choices(topics_file: Path | None = None) -> list[tuple[str, str]]:
    """(slug, name) of every topic in the taxonomy; empty when the matcher has none."""
    try:
        try:
            from ..match.topics import (
                load_topics,  # the taxonomy with names, where the matcher has one
            )

            return [(t.slug, t.name) for t in load_topics(topics_file)]
        except ImportError:
            from ..match import known_topics

            return [(slug, slug) for slug in sorted(known_topics(topics_file) or ())]
    except BotError as e:
        log.error("the subscribe form offers no topics: %s", e)
        return []


def web_of(request: Request) -> Web:
    """The app's shared `Web`."""
    web: Web = request.app.state.web
    return web


async def read_form(request: Request) -> FormData | Response:
    """The posted form, or the answer when it is not one of ours.

    Larger than MAX_BODY: 413 (`limits.BodyCap` stops the body while it streams); a field with
    a control character (NUL and the like, never typed by a person): 400, saying which field.
    """
    try:
        form = await request.form(max_files=0, max_fields=200)
    except HTTPException as e:  # Starlette's own form limits and malformed multipart bodies
        return PlainTextResponse(f"{e.detail}\n", e.status_code)
    for name, value in form.multi_items():
        text = value if isinstance(value, str) else ""
        if _CONTROL.search(name) or _CONTROL.search(text):
            return web_of(request).message(
                request,
                400,
                "Please check the form",
                f"The field {printable(name)[:40]!r} contains a control character (such as NUL) "
                "that no one types; remove it and send the form again.",
            )
    return form


async def posted_form(request: Request) -> FormData | Response:
    """The posted form of one of our pages, or the answer when it is bad, too large or lacks CSRF."""
    form = await read_form(request)
    if isinstance(form, Response):
        return form
    if not csrf_passed(request, form):
        return forged(request)
    return form


def fields(form: FormData) -> dict[str, str]:
    """The form's text fields (the first value of each)."""
    return {k: v for k, v in form.items() if isinstance(v, str)}


def csrf_passed(request: Request, form: FormData) -> bool:
    """The form carries the same valid CSRF token as the cookie."""
    value = form.get(CSRF_FIELD)
    return csrf_ok(
        web_of(request).settings,
        request.cookies.get(CSRF_COOKIE),
        value if isinstance(value, str) else None,
    )


def forged(request: Request) -> HTMLResponse:
    """The answer to a form without a valid CSRF token."""
    return web_of(request).message(
        request,
        403,
        "Please try again",
        "This form had expired or did not come from this site. Reload the page and send it again.",
    )


def bad_link(request: Request, error: TokenError) -> HTMLResponse:
    """The answer to a forged, wrong or expired link."""
    return web_of(request).message(
        request, 400, "This link does not work", str(error).capitalize() + "."
    )


def link_body(
    request: Request, kind: str, max_age: float | None = None
) -> dict[str, Any] | HTMLResponse:
    """The payload of the path's `{token}`, a link of `kind` no older than `max_age` seconds, or
    the page saying why the link does not work (`bad_link`)."""
    try:
        return tokens.verify(
            web_of(request).settings, request.path_params["token"], kind, max_age=max_age
        )
    except TokenError as e:
        return bad_link(request, e)
