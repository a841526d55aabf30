"""A refusal at send time: an SMTP 5xx for a recipient is a hard bounce, a 4xx a soft one."""

from __future__ import annotations

from datetime import UTC, datetime

from ..config import Settings
from ..errors import SendError
from ..models import Digest
from ..store import BounceRow, Store
from .policy import Action, Kind, record

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ADDRESS_STATUS = ("5.1.", "5.2.")  # RFC 3463: the address or the mailbox (not the content)


def kind_of(error: SendError) -> Kind | None:
    """The bounce a send error is, if any: refusals of the recipient or, at DATA, of its mailbox."""
    stage, code, status = error.smtp_stage, error.smtp_code, error.smtp_status
    if stage == "recipient" and 500 <= code < 600:
        return Kind.HARD
    if stage == "message to" and 500 <= code < 600 and status.startswith(_ADDRESS_STATUS):
        return Kind.HARD
    if stage == "recipient" and 400 <= code < 500 and code != 421:
        return Kind.SOFT
    return None  # the sender refused, the content refused, a lost connection, another channel


def record_refusal(
    store: Store, settings: Settings, digest: Digest, error: SendError, now: datetime | None = None
) -> Action:
    """Record the bounce a send error is (once per digest for a soft one) and apply the policy."""
    kind = kind_of(error)
    if kind is None:
        return Action.NONE
    sid, at = digest.subscriber.id, now or datetime.now(UTC)
    if kind == Kind.SOFT and store.count_bounces(sid, kind, _EPOCH, digest.id):
        return Action.NONE  # a retry of the same digest refused again
    code = f"{error.smtp_code} {error.smtp_status}".strip()
    reason = str(error).partition(f": {error.smtp_code} ")[2].partition("; ")[0] or str(error)
    return record(store, settings, BounceRow(sid, kind, code, reason, at, digest.id))
