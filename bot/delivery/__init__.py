"""Delivery: what is due, and each digest's way out (claim → render → send → confirm).

    plan      what is due now and what goes into it (the one select step; `Plan`)
    fitted    the fitted matcher kept between runs until the corpus changes (`FittedModel`)
    lease     who holds a pending digest (owner token, lease, when another may take over)
    process   what the sending threads of one process share (digests in flight, switch interval)
    send      one digest: claim, render, send with retries, confirm (`Sender`, `RetryPolicy`)
    ahead     a run's digests sent in order, the next rendered while one is on the wire
    recover   digests left pending by a crash, resolved before anything new
    run       `Deliverer` and `run_once`: one run of the single process
    preview   the next digest of one subscriber, written to files, nothing recorded

The worker pool (`bot.pool`) sends with the same `Sender`.
"""

from __future__ import annotations

from ..models import Outcome, OutcomeStatus
from .ahead import AHEAD
from .fitted import FittedModel
from .lease import LEASE, STALE, owner_alive, owner_token
from .plan import DuePlans, Plan, coming_slot, due_slots, plan_digests, select_entries
from .preview import next_digest, write_preview
from .run import Deliverer, RunReport, outbox_line, run_once
from .send import ChannelFactory, Held, RetryPolicy, Sender, open_channel

__all__ = [
    "AHEAD",
    "LEASE",
    "STALE",
    "ChannelFactory",
    "Deliverer",
    "DuePlans",
    "FittedModel",
    "Held",
    "Outcome",
    "OutcomeStatus",
    "Plan",
    "RetryPolicy",
    "RunReport",
    "Sender",
    "coming_slot",
    "due_slots",
    "next_digest",
    "open_channel",
    "outbox_line",
    "owner_alive",
    "owner_token",
    "plan_digests",
    "run_once",
    "select_entries",
    "write_preview",
]
