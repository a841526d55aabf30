"""Sending speed: 5,000 digests selected, rendered, sent over SMTP and recorded in the ledger,
next to a bare smtplib loop sending the same pre-rendered bytes over one connection.

    python benchmarks/send.py [--digests 5000] [--database sqlite:///...] [--sqlite-synchronous FULL]

The SMTP sink is aiosmtpd in its own process on loopback (so it does not share our GIL).
Target: digestbot's send rate ≥ 50 % of the bare loop's.
"""

from __future__ import annotations

import argparse
import smtplib
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _smtp import start_sink

from bot.channels import email as email_channel
from bot.channels.email import wire_message
from bot.config import Settings
from bot.delivery import Deliverer, plan_digests
from bot.models import Digest, Entry, Interests, Subscriber
from bot.store import Store

TOPICS = [
    "quantization",
    "diffusion",
    "retrieval",
    "robotics",
    "speech",
    "graph neural networks",
    "reinforcement learning",
    "protein folding",
    "code generation",
    "vision transformers",
]


class Stopwatch:
    """Adds up the time spent in wrapped functions, by label."""

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def wrap(self, owner: object, name: str, label: str) -> None:
        inner = getattr(owner, name)

        def timed(*a: object, **kw: object) -> object:
            t0 = time.perf_counter()
            try:
                return inner(*a, **kw)
            finally:
                self.spent[label] = self.spent.get(label, 0.0) + time.perf_counter() - t0

        setattr(owner, name, timed)


def bare_loop(port: int, messages: list[tuple[str, str, bytes]]) -> float:
    """Seconds to send pre-rendered messages with smtplib over one connection."""
    t0 = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as conn:
        for sender, rcpt, data in messages:
            conn.sendmail(sender, [rcpt], data)
    return time.perf_counter() - t0


def corpus(now: datetime) -> list[Entry]:
    out = []
    for i in range(400):
        t = TOPICS[i % len(TOPICS)]
        out.append(
            Entry(
                f"arxiv:2611.{i:05d}",
                f"Scaling {t} with sparse experts, study {i}",
                f"We revisit {t} and show that a simple recipe beats strong baselines on {i % 7 + 3} benchmarks. "
                "Code and models are released.",
                f"https://arxiv.org/abs/2611.{i:05d}",
                ("Ana Pérez", "Li Wei", "Sam Jones"),
                now - timedelta(hours=2),
                "hf_daily",
            )
        )
    return out


def subscribers(n: int) -> list[Subscriber]:
    return [
        Subscriber(
            f"s{i:05d}",
            f"Reader {i}",
            f"s{i:05d}@example.org",
            schedule="0 * * * *",
            timezone="UTC",
            max_items=8,
            interests=Interests(
                description=f"{TOPICS[i % 10]} and {TOPICS[(i * 3) % 10]}",
                keywords=(TOPICS[i % 10],),
            ),
        )
        for i in range(n)
    ]


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--digests", type=int, default=5000)
    ap.add_argument("--database", default="", help="a database URL (default: a new SQLite file)")
    ap.add_argument(
        "--sqlite-synchronous",
        default="NORMAL",
        metavar="MODE",
        type=str.upper,
        choices=("NORMAL", "FULL"),
        help="the ledger's database_sqlite_synchronous: NORMAL (the default) or FULL (an fsync per commit)",
    )
    args = ap.parse_args()
    sink, port = start_sink()
    tmp = Path(tempfile.mkdtemp(prefix="digestbot-bench-"))
    db = args.database or f"sqlite:///{tmp / 'ledger.db'}"
    settings = Settings(
        database_url=db,
        database_sqlite_synchronous=args.sqlite_synchronous,
        smtp_url=f"smtp://127.0.0.1:{port}",
        smtp_rate=0,
        from_addr="digestbot <digest@example.org>",
        base_url="https://digest.example.org",
        secret_key="bench",
    )
    try:
        now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
        store = Store(db, args.sqlite_synchronous)
        store.upsert_entries(corpus(now), now=now - timedelta(hours=1))
        subs = subscribers(args.digests)

        t0 = time.perf_counter()
        plans = plan_digests(settings, store, subs, now).plans
        t_select = time.perf_counter() - t0
        assert len(plans) == args.digests, len(plans)
        items = sum(len(p.items) for p in plans)

        # The reference: the same messages, rendered beforehand, sent by a bare smtplib loop over
        # one connection; run before and after digestbot (the machine's load drifts), mean taken.
        rendered = []
        for p in plans:
            d = Digest(f"ref.{p.subscriber.id}", p.subscriber, p.slot, p.items, p.more)
            w = wire_message(d, settings)
            rendered.append((w.sender, w.recipient, w.data))
        size = sum(len(r[2]) for r in rendered) / len(rendered)
        t_bare = bare_loop(port, rendered)

        watch = Stopwatch()
        for name in ("claim", "mark_sent"):
            watch.wrap(Store, name, "ledger (claim + confirm)")
        watch.wrap(email_channel, "wire_message", "render + build")
        watch.wrap(email_channel.Smtp, "transaction", "SMTP exchange")
        deliverer = Deliverer(settings, store)
        t0 = time.perf_counter()
        outcomes = deliverer.deliver_all(
            plans
        )  # as run_once sends: the next rendered while one is on the wire
        deliverer.close()
        t_send = time.perf_counter() - t0
        sent = sum(o.status == "sent" for o in outcomes)
        assert sent == args.digests, {o.status for o in outcomes}
        store.close()

        t_bare = (t_bare + bare_loop(port, rendered)) / 2
    finally:
        sink.terminate()
        sink.wait()

    ours, bare = args.digests / t_send, args.digests / t_bare
    sync = f" (synchronous={args.sqlite_synchronous})" if db.startswith("sqlite") else ""
    print(
        f"digests: {args.digests}, items: {items}, mean message: {size / 1024:.1f} KiB, ledger: {db.split(':', 1)[0]}{sync}"
    )
    print(f"select (match {len(subs)} subscribers in one pass): {t_select:.2f} s")
    print(f"digestbot  claim+render+send+record: {t_send:7.2f} s  {ours:8.1f} msg/s")
    print(f"bare smtplib loop, same bytes:       {t_bare:7.2f} s  {bare:8.1f} msg/s")
    print(
        f"digestbot / bare: {ours / bare:.0%} (target ≥ 50 %);  end to end with selection: "
        f"{args.digests / (t_send + t_select):.1f} msg/s"
    )
    print(
        "where digestbot's time goes, per message (render overlaps the SMTP exchange): "
        + ", ".join(
            f"{label} {spent / args.digests * 1000:.2f} ms" for label, spent in watch.spent.items()
        )
    )


if __name__ == "__main__":
    main()
