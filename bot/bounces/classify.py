"""One message of the bounce mailbox: a bounce (hard or soft), a complaint, or left with a reason.

A bounce is a delivery status notification sent to a digest's VERP return path: the signed token
in the address it came to names the subscriber, and Mailman's `flufl.bounce` detectors (RFC 3464
DSNs, Postfix, Exim, Gmail's and a dozen other formats) say whether it failed for good (hard) or
for now (soft). A complaint is an ARF report (RFC 5965, `Feedback-Type: abuse`) about a digest:
the token in the embedded original's Return-Path names the subscriber, else its Message-ID names
the digest in the ledger, believed only when the original's List-Unsubscribe link is the signed
one that digest carried (a Message-ID is guessable: `<subscriber.slot@domain>`, so a forged report
naming one would otherwise unsubscribe anyone). Anything else (an auto-reply, a stranger's mail, a forged token) is left
in the mailbox with the reason.
"""

from __future__ import annotations

import email
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses

from flufl.bounce import all_failures

from ..config import Settings
from ..errors import TokenError
from ..store import Store, is_digest_of
from ..text import clip
from ..tokens import verify
from .policy import Kind
from .verp import subscriber_of, token_of

_TO_HEADERS = ("X-Original-To", "Delivered-To", "Envelope-To", "X-Envelope-To", "To")
_OUT_OF_OFFICE = re.compile(
    r"out of (the )?office|auto(matic)?[ -]?reply|autoreply|abwesenheit|vacation|away from",
    re.IGNORECASE,
)
_REPLY_CODE = re.compile(r"\b([45]\d\d)[ -]+([45]\.\d{1,3}\.\d{1,3}\b)?\s*(.*)")
_STATUS = re.compile(r"\b([45]\.\d{1,3}\.\d{1,3})\b")
_FORGED = "a token this digestbot did not sign (forged, or another installation's)"
_DIGEST_MID = re.compile(r"<([^@<>\s]+)@[^<>\s]+>")
_UNSUBSCRIBE = re.compile(r"/unsubscribe/([A-Za-z0-9_.-]+)>?")
# The marker lines after which a text-only bounce quotes the original (Exim's, qmail's), compared
# with the line's dashes and spaces stripped and lower-cased: True when headers follow.
_COPY_MARKERS = {
    "this is a copy of the message, including all the headers.": True,  # Exim
    "this is a copy of the message's headers.": True,  # Exim, bounce_return_body = false
    "below this line is a copy of the message.": True,  # qmail
    "this is a copy of the body of the message, without the headers.": False,  # Exim
}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a message is: `kind` and its subscriber, or `kind` None and why it is left alone."""

    kind: Kind | None
    subscriber_id: str = ""
    code: str = ""  # "550 5.1.1", "4.2.2", ""
    reason: str = ""  # the server's words, or why the message is left
    digest_id: str = ""
    message_id: str = ""  # the bounce's or report's own Message-ID

    @classmethod
    def left(cls, reason: str, msg: Message) -> Verdict:
        """A message left in the mailbox, and why."""
        return cls(None, reason=reason, message_id=str(msg.get("Message-ID", "")).strip())


def classify(settings: Settings, store: Store, raw: bytes) -> Verdict:
    """What the message `raw` is and whom it concerns (see the module's docstring)."""
    msg = email.message_from_bytes(raw)
    mid = str(msg.get("Message-ID", "")).strip()
    if _report_type(msg) == "feedback-report":
        return _complaint(settings, store, msg, mid)
    temporary, permanent = all_failures(msg)
    dsn = _report_type(msg) == "delivery-status"
    if not (permanent or temporary or dsn) and _auto_reply(msg):
        return Verdict.left("an auto-reply (out of office, vacation), not a bounce", msg)
    found = _addressed_token(msg)
    if not found:
        return Verdict.left(
            "not sent to a digest's return path (bounces+TOKEN@…): a stranger's mail", msg
        )
    try:
        sid = subscriber_of(settings, found)
    except TokenError as e:
        return Verdict.left(f"a bounce for {_FORGED} ({e})", msg)
    code, reason, action = _diagnosis(msg)
    if permanent or (dsn and action == "failed"):
        kind = Kind.HARD
    elif temporary or (dsn and action == "delayed"):
        kind = Kind.SOFT
    else:
        return Verdict.left(f"sent to {sid}'s return path but no bounce flufl.bounce knows", msg)
    gone = _another_address(
        settings, store, sid, [a.decode(errors="replace") for a in permanent | temporary]
    )
    if gone:
        return Verdict.left(f"a bounce for {gone}, an address {sid} no longer uses", msg)
    return Verdict(kind, sid, code, reason, _original_digest(msg, sid), mid)


def _another_address(settings: Settings, store: Store, sid: str, addresses: list[str]) -> str:
    """The address a bounce is about, when the failed recipients it names (the MTA's own
    Final-Recipient) are all addresses `sid`'s digests no longer go to (its file or web row
    names another now: a late bounce for the old address must not suspend the new person);
    else "". Nothing named, or nothing known of the subscriber's address (a Slack member): ""."""
    named = [a.strip().strip("<>").strip() for a in addresses if a.strip()]
    if not named:
        return ""
    from ..roster import address_of

    current = address_of(settings, store, sid)
    if current is None or any(a.lower() == current.strip().lower() for a in named):
        return ""
    return clip(named[0], 200)


def _report_type(msg: Message) -> str:
    if msg.get_content_type() != "multipart/report":
        return ""
    return str(msg.get_param("report-type", "")).lower()


def _auto_reply(msg: Message) -> bool:
    """RFC 3834's Auto-Submitted, the older vendor headers, or an out-of-office subject."""
    if str(msg.get("Auto-Submitted", "no")).strip().lower() != "no":
        return True
    if any(msg.get(h) for h in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress")):
        return True
    if str(msg.get("Precedence", "")).strip().lower() in ("auto_reply", "auto-reply"):
        return True
    return bool(_OUT_OF_OFFICE.search(str(msg.get("Subject", ""))))


def _addressed_token(msg: Message) -> str:
    """The first VERP address (one holding a token) the message was delivered or addressed to."""
    for header in _TO_HEADERS:
        for _name, addr in getaddresses([str(v) for v in msg.get_all(header, [])]):
            if token_of(addr):
                return addr
    return ""


def _parts(msg: Message, *types: str) -> list[Message]:
    return [p for p in msg.walk() if p.get_content_type() in types]


def _fields(part: Message) -> list[Message]:
    """The header blocks of a message/delivery-status or message/feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [p for p in payload if isinstance(p, Message)]
    text = part.get_payload(decode=True) or b""
    assert isinstance(text, bytes)
    return [HeaderParser().parsestr(b) for b in text.decode(errors="replace").split("\n\n")]


def _diagnosis(msg: Message) -> tuple[str, str, str]:
    """(code, reason, action) from the DSN's fields, else from the text of the bounce."""
    for part in _parts(msg, "message/delivery-status"):
        for block in _fields(part)[1:]:
            status = str(block.get("Status", "")).strip()
            diag = " ".join(str(block.get("Diagnostic-Code", "")).split())
            diag = diag.partition(";")[2].strip() or diag
            smtp = _REPLY_CODE.search(diag)
            code = f"{smtp.group(1)} {status}".strip() if smtp else status
            action = str(block.get("Action", "")).strip().lower()
            return code, clip(diag or action, 300), action
    for text in _texts(msg):
        for line in text.splitlines():
            smtp = _REPLY_CODE.search(line)
            if smtp and (smtp.group(2) or smtp.group(1).startswith("5")):
                code = f"{smtp.group(1)} {smtp.group(2) or ''}".strip()
                return code, clip(" ".join(line.split()), 300), ""
    return "", "", ""


def _original(msg: Message) -> Message | None:
    """The digest a report or bounce quotes (its whole message or its headers), if it does."""
    for part in _parts(msg, "message/rfc822", "text/rfc822-headers"):
        if part.get_content_type() == "message/rfc822":
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                return inner[0]
        else:
            body = part.get_payload(decode=True)
            if isinstance(body, bytes):
                return HeaderParser().parsestr(body.decode(errors="replace"))
    return None


def _texts(msg: Message) -> list[str]:
    """The decoded text of each text/plain part."""
    out = []
    for part in _parts(msg, "text/plain"):
        body = part.get_payload(decode=True)
        out.append(body.decode(errors="replace") if isinstance(body, bytes) else "")
    return out


def _quoted_in_text(msg: Message) -> Message | None:
    """The original's headers as a text-only bounce quotes them after its marker line (Exim's
    "------ This is a copy of the message, including all the headers. ------", qmail's). Only
    the first marker line counts: a marker inside the quoted body (feed text) is not the bounce's."""
    for text in _texts(msg):
        lines = text.splitlines(keepends=True)
        for i, line in enumerate(lines):
            headers = _COPY_MARKERS.get(line.strip(" -\r\n\t").lower())
            if headers is not None:
                quoted = "".join(lines[i + 1 :]).lstrip("\r\n")
                return HeaderParser().parsestr(quoted) if headers else None
    return None


def _original_digest(msg: Message, sid: str = "") -> str:
    """The digest id the quoted original names (X-Digestbot-Digest, else its Message-ID), whether
    quoted as a part of the bounce or (Exim, qmail) in its text; with `sid`, only an id of that
    subscriber's (the quoted text is anyone's to write)."""
    original = _original(msg)
    if original is None:
        original = _quoted_in_text(msg)
    if original is None:
        return ""
    if original.get("X-Digestbot-Digest"):
        did = str(original["X-Digestbot-Digest"]).strip()
    else:
        found = _DIGEST_MID.search(str(original.get("Message-ID", "")))
        did = found.group(1) if found else ""
    return _owned(did, sid) if sid else did


def _owned(did: str, sid: str) -> str:
    """`did` when it is one of subscriber `sid`'s digest ids (`<sid>.<slot>`), else ""."""
    return did if is_digest_of(did, sid) else ""


def _complaint(settings: Settings, store: Store, msg: Message, mid: str) -> Verdict:
    """An ARF report: abuse about a digest unsubscribes its subscriber; anything else is left."""
    feedback = [b for p in _parts(msg, "message/feedback-report") for b in _fields(p)]
    kinds = {str(b.get("Feedback-Type", "")).strip().lower() for b in feedback} - {""}
    if "abuse" not in kinds:
        return Verdict.left(f"a feedback report of type {sorted(kinds) or 'none'}, not abuse", msg)
    original = _original(msg)
    if original is None:
        return Verdict.left("a complaint that quotes no original message", msg)
    did = _original_digest(msg)
    paths = [str(original.get("Return-Path", ""))]
    paths += [str(b.get("Original-Mail-From", "")) for b in feedback]
    verp = next((p for p in paths if token_of(p)), "")
    if verp:
        try:
            sid = subscriber_of(settings, verp)
        except TokenError as e:
            return Verdict.left(f"a complaint with {_FORGED} ({e})", msg)
        did = _owned(did, sid)  # the quoted copy is the reporter's to write; the token is ours
    else:  # no VERP: the digest it names in the ledger, if the digest's own signed link says so
        row = store.get_digest(did) if did else None
        if row is None:
            return Verdict.left(f"a complaint about no digest of ours ({did or 'no id'})", msg)
        if not _signed_for(settings, original, row.subscriber_id, did):
            return Verdict.left(
                f"a complaint naming digest {did} without that digest's signed unsubscribe link "
                "(a Message-ID alone can be guessed; set [bounces] address for VERP)",
                msg,
            )
        sid = row.subscriber_id
    # No address check here, unlike a bounce: providers redact the complainer's address in the
    # copy they quote, and a complaint left uncounted would keep mailing someone who said spam.
    return Verdict(Kind.COMPLAINT, sid, "abuse", "marked a digest as spam", did, mid)


def _signed_for(settings: Settings, original: Message, subscriber_id: str, digest_id: str) -> bool:
    """Whether the quoted original's List-Unsubscribe carries the link digestbot signed for this
    subscriber's digest `digest_id` (any key still listed; no age limit: reports come late)."""
    found = _UNSUBSCRIBE.search(str(original.get("List-Unsubscribe", "")))
    if found is None:
        return False
    try:
        payload = verify(settings, found.group(1), "unsubscribe")
    except TokenError:
        return False
    return bool(payload["subscriber_id"] == subscriber_id and payload["digest_id"] == digest_id)
