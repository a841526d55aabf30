"""The pages behind the links in every digest: manage, unsubscribe (RFC 8058), feedback, Slack buttons."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from .. import tokens
from ..errors import StoreError
from ..models import Interests
from ..tokens import TokenError
from ._state import (
    MANAGE_MAX_AGE,
    Web,
    csrf_passed,
    fields,
    forged,
    link_body,
    posted_form,
    read_form,
    web_of,
)
from .feed import feed_url
from .forms import Preferences, frequency_of, parse_preferences
from .security import slack_headers_ok, slack_signature_ok

log = logging.getLogger(__name__)
FEEDBACK_MAX_AGE = 365 * 24 * 3600
_DONE = {
    "confirmed": "Your subscription is confirmed. Your first digest comes at the next scheduled time.",
    "save": "Your changes are saved.",
    "pause": "Your digest is paused. Resume it here whenever you like.",
    "resume": "Your digest is on again.",
    "unsubscribe": "You are unsubscribed and will receive no more digests.",
}
_VOTES = {"up": 1, "down": -1}


_OLD_ADDRESS = (
    "This link was mailed to an address this subscription no longer uses; the new address's own "
    "digests carry its links."
)


def _unsubscribe(web: Web, sid: str, address: str = "") -> bool:
    """Unsubscribe whoever `sid` is: a web subscriber's row, else a status that wins over the file
    for the address the link was mailed to (a link mailed to an address the file no longer names
    changes nothing for the new person: False)."""
    if web.store.web_subscriber(sid) is not None:
        web.store.set_web_status(sid, "unsubscribed")
    elif web.link_controls(sid, address):
        web.store.set_subscriber_status(sid, "unsubscribed", address=address or None)
    else:
        return False
    return True


# --- manage ------------------------------------------------------------------------------------
async def manage_page(request: Request) -> Response:
    """Edit interests and schedule, pause, resume or unsubscribe: for the token's subscriber only."""
    web = web_of(request)
    body = link_body(request, "manage", MANAGE_MAX_AGE)
    if isinstance(body, Response):
        return body
    sid, address = body["subscriber_id"], str(body.get("address") or "")
    if not await run_in_threadpool(web.link_reads, sid, address):
        # mailed to an address the file no longer names: the new person's settings are not shown
        return web.message(request, 403, "Not your subscription any more", _OLD_ADDRESS)
    return await _manage_view(request, web, sid, {}, None, address)


async def _manage_view(
    request: Request,
    web: Web,
    sid: str,
    errors: dict[str, str],
    prefs: Preferences | None,
    address: str,
) -> Response:
    row = await run_in_threadpool(web.store.web_subscriber, sid)
    ctx: dict[str, Any] = {
        "action": request.url.path,
        "done": _DONE.get(request.query_params.get("done", ""), ""),
        # the subscriber's Atom feed (README "Trending"), bound like this link to its address
        "feed_url": feed_url(web, sid, address),
    }
    if row is not None:
        frequency, hour = frequency_of(row.schedule)
        if prefs is None:
            prefs = Preferences(
                email=row.email,
                name=row.name,
                interests=Interests.from_dict(row.interests),
                frequency="daily" if frequency == "custom" else frequency,
                hour=hour,
                timezone=row.timezone,
                max_items=row.max_items,
            )
        ctx.update(address=row.email, state=row.status, editable=True, custom=frequency == "custom")
    else:
        sub = await run_in_threadpool(web.file_subscriber, sid)
        if sub is None:
            return web.message(
                request, 404, "Nothing to manage", "This subscription no longer exists."
            )
        statuses = await run_in_threadpool(web.store.subscriber_statuses)
        frequency, hour = frequency_of(sub.schedule)
        prefs = Preferences(
            email=sub.email,
            name=sub.name,
            interests=sub.interests,
            frequency=frequency,
            hour=hour,
            timezone=sub.timezone,
            max_items=sub.max_items,
        )
        ctx.update(
            address=sub.address,
            state=statuses.get(sid, "active"),
            editable=False,
            custom=frequency == "custom",
            schedule=sub.schedule,
        )
    ctx.setdefault("schedule", "")
    found = (await run_in_threadpool(web.store.suspensions)).get(sid)  # by bounces (bot.bounces)
    ctx["suspended"] = found.reason if found is not None else ""
    status = 400 if errors else 200
    return web.page(request, "manage.html", status, **ctx, **web.form_context(prefs, errors))


async def manage(request: Request) -> Response:
    """Apply one action from the manage page: save, pause, resume or unsubscribe."""
    web = web_of(request)
    form = await posted_form(request)
    if isinstance(form, Response):
        return form
    body = link_body(request, "manage", MANAGE_MAX_AGE)
    if isinstance(body, Response):
        return body
    sid, address = body["subscriber_id"], body.get("address", "")
    action = form.get("action", "")
    store = web.store
    row = await run_in_threadpool(store.web_subscriber, sid)
    if row is None and await run_in_threadpool(web.file_subscriber, sid) is None:
        return web.message(request, 404, "Nothing to manage", "This subscription no longer exists.")
    if action == "save" and row is not None:
        chosen = [t for t in form.getlist("topics") if isinstance(t, str)]
        prefs, errors = parse_preferences(fields(form), web.topic_slugs, chosen, need_email=False)
        if errors:
            prefs.email = row.email
            return await _manage_view(request, web, sid, errors, prefs, address)
        await run_in_threadpool(
            lambda: store.update_web_subscriber(
                sid,
                name=prefs.name,
                interests=prefs.interests.to_dict(),
                schedule=prefs.schedule,
                timezone=prefs.timezone,
                max_items=prefs.max_items,
            )
        )
    elif action in ("pause", "resume", "unsubscribe"):
        status = {"pause": "paused", "resume": "active", "unsubscribe": "unsubscribed"}[action]
        if row is None and not await run_in_threadpool(web.link_controls, sid, address):
            # mailed to an address the file no longer names: not this person's to change (nor
            # its suspension by bounces to lift)
            return web.message(request, 403, "Not your subscription any more", _OLD_ADDRESS)
        if action == "resume":  # lifts a suspension by bounces too (bot.bounces)
            await run_in_threadpool(store.resume, sid)
        if row is not None:
            # Resuming after unsubscribing takes a new confirmation (subscribe again): a manage
            # link up to a year old must not switch the mail back on for whoever holds it.
            allowed = {
                "pause": ("active",),
                "resume": ("paused",),
                "unsubscribe": ("active", "paused", "unconfirmed"),
            }[action]
            await run_in_threadpool(lambda: store.set_web_status(sid, status, only_from=allowed))
        else:
            await run_in_threadpool(
                lambda: store.set_subscriber_status(sid, status, address=address or None)
            )
    else:
        return web.message(request, 400, "Unknown action", "Use the buttons on the manage page.")
    return RedirectResponse(f"{request.url.path}?done={action}", 303)


# --- unsubscribe (RFC 8058) ----------------------------------------------------------------------
async def unsubscribe_page(request: Request) -> Response:
    """A page with a button; changes nothing (mail scanners follow links)."""
    web = web_of(request)
    body = link_body(request, "unsubscribe")
    if isinstance(body, Response):
        return body
    return web.page(request, "unsubscribe.html", action=request.url.path)


async def unsubscribe(request: Request) -> Response:
    """One-click (`List-Unsubscribe=One-Click`) or the page's button: unsubscribe now; idempotent."""
    web = web_of(request)
    form = await read_form(request)
    if isinstance(form, Response):
        return form
    body = link_body(request, "unsubscribe")
    if isinstance(body, Response):
        return body
    sid, address = body["subscriber_id"], body.get("address", "")
    one_click = form.get("List-Unsubscribe") == "One-Click"
    if not one_click and not csrf_passed(request, form):
        return forged(request)
    applied = await run_in_threadpool(_unsubscribe, web, sid, address)
    if one_click:
        return PlainTextResponse("Unsubscribed.\n")
    # The manage link offered is bound, like this one, to the address it was mailed to; none when
    # that address is no longer the subscription's (the new person's settings are not its to see).
    again = (
        "Changed your mind? Manage your subscription",
        web.link("manage", sid, address=address),
    )
    return web.message(
        request, 200, "You are unsubscribed", _DONE["unsubscribe"], again if applied else None
    )


# --- feedback ----------------------------------------------------------------------------------
def _vote(request: Request) -> int | None:
    return _VOTES.get(request.path_params["vote"])


async def feedback_page(request: Request) -> Response:
    """The page a 👍/👎 link opens: the paper and a button; a GET records nothing."""
    web = web_of(request)
    vote = _vote(request)
    if vote is None:
        return web.message(request, 404, "Not found", "A feedback link ends in /up or /down.")
    body = link_body(request, "feedback", FEEDBACK_MAX_AGE)
    if isinstance(body, Response):
        return body
    found = await run_in_threadpool(web.store.get_entries, [body["entry_id"]])
    entry = found.get(body["entry_id"])
    if entry is None:
        return web.message(request, 404, "Paper not found", "This paper is no longer in the store.")
    return web.page(request, "feedback.html", action=request.url.path, entry=entry, up=vote > 0)


async def feedback(request: Request) -> Response:
    """Record the vote from a 👍/👎 page for the token's subscriber and entry."""
    web = web_of(request)
    vote = _vote(request)
    if vote is None:
        return web.message(request, 404, "Not found", "A feedback link ends in /up or /down.")
    form = await read_form(request)
    if isinstance(form, Response):
        return form
    if not csrf_passed(request, form):
        return forged(request)
    body = link_body(request, "feedback", FEEDBACK_MAX_AGE)
    if isinstance(body, Response):
        return body
    try:
        await run_in_threadpool(
            web.store.record_feedback, body["subscriber_id"], body["entry_id"], vote
        )
    except StoreError:
        return web.message(request, 404, "Paper not found", "This paper is no longer in the store.")
    return web.message(
        request, 200, "Thank you", "Your vote is recorded; your next digests learn from it."
    )


# --- Slack interactivity -------------------------------------------------------------------------
async def slack_actions(request: Request) -> Response:
    """Slack's interactivity Request URL: verify the signature, then record 👍/👎 button clicks."""
    web = web_of(request)
    timestamp = request.headers.get("x-slack-request-timestamp")
    signature = request.headers.get("x-slack-signature")
    # Before reading a byte of the body: a stranger's request costs nothing (the body itself
    # is capped at MAX_BODY by limits.BodyCap while it streams).
    ok, why = slack_headers_ok(web.signing_secret, timestamp, signature)
    if not ok:
        log.warning("refused a /slack/actions request: %s", why)
        return PlainTextResponse(f"refused: {why}", 401, headers={"connection": "close"})
    raw = await request.body()
    ok, why = slack_signature_ok(web.signing_secret, timestamp, raw, signature)
    if not ok:
        log.warning("refused a /slack/actions request: %s", why)
        return PlainTextResponse(f"refused: {why}", 401)
    try:
        payload = json.loads(parse_qs(raw.decode())["payload"][0])
        actions = payload.get("actions", []) if isinstance(payload, dict) else []
    except (KeyError, ValueError, UnicodeDecodeError):
        return PlainTextResponse("no payload", 400)
    for action in actions if isinstance(actions, list) else []:
        if not isinstance(action, dict):
            continue
        try:
            vote = await run_in_threadpool(_slack_vote, web, action)
            if vote is not None:
                await run_in_threadpool(web.store.record_feedback, *vote)
        except (TokenError, StoreError) as e:
            log.warning("Slack feedback not recorded: %s", e)
    return Response(status_code=200)


def _slack_vote(web: Web, action: dict[str, Any]) -> tuple[str, str, int] | None:
    """(subscriber, entry, ±1) that a Slack button click stands for; None for other actions.

    Two shapes are accepted: the renderer's `digestbot_up:<digest>:<entry>` with value
    "<digest> <entry>" (checked against the ledger: the entry must be in that digest), and
    `feedback:up` / `feedback:down` with a signed feedback token as the value.
    """
    action_id, value = str(action.get("action_id", "")), str(action.get("value", ""))
    head = action_id.split(":", 1)[0]
    if head in ("digestbot_up", "digestbot_down"):
        did, _, eid = value.partition(" ")
        sent = web.store.deliveries_of(did)
        if sent is None or eid not in sent.entry_ids:
            raise TokenError(f"entry {eid!r} is not in digest {did!r}")
        return sent.subscriber_id, eid, _VOTES[head.removeprefix("digestbot_")]
    parts = action_id.split(":")
    if parts[0] == "feedback" and len(parts) >= 2 and parts[1] in _VOTES:
        body = tokens.verify(web.settings, value, "feedback", max_age=FEEDBACK_MAX_AGE)
        return body["subscriber_id"], body["entry_id"], _VOTES[parts[1]]
    return None
