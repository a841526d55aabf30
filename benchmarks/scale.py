"""Digests per second: the single process next to a Celery pool of 1 and 2 workers, same subscribers.

    python benchmarks/scale.py [--subscribers 2000] [--entries 30] [--workers 1 2] [--match 20000]

Needs PostgreSQL and Redis (DIGESTBOT_BENCH_DATABASE_URL, DIGESTBOT_BENCH_REDIS_URL; defaults are
the local test servers). Each run gets a fresh schema and queue, dropped afterwards. Mail goes to a
loopback SMTP sink (aiosmtpd) in a process of its own, so it takes no CPU from the process measured.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from tempfile import TemporaryDirectory

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _smtp import smtp_sink

from bot.config import Settings
from bot.delivery import Deliverer, plan_digests
from bot.models import Entry, Interests, Subscriber
from bot.pool import dispatch_due, make_app
from bot.store import Store

PG = os.environ.get(
    "DIGESTBOT_BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS = os.environ.get("DIGESTBOT_BENCH_REDIS_URL", "redis://127.0.0.1:6379/9")
FROM = "digestbot <digest@example.org>"
WORDS = (
    "quantization",
    "diffusion",
    "retrieval",
    "robotics",
    "speech",
    "graphs",
    "agents",
    "vision",
)


def subscribers(n: int) -> list[Subscriber]:
    """`n` subscribers due now, with varied interests."""
    out = []
    for i in range(n):
        a, b = WORDS[i % len(WORDS)], WORDS[(i * 7 + 3) % len(WORDS)]
        out.append(
            Subscriber(
                f"b{i:07d}",
                f"Reader {i}",
                f"b{i:07d}@example.org",
                schedule="* * * * *",
                timezone="UTC",
                max_items=10,
                interests=Interests(f"{a} and {b} in machine learning", (a, b)),
            )
        )
    return out


def entries(n: int, now: datetime) -> list[Entry]:
    """`n` recent entries on the same topics."""
    return [
        Entry(
            f"arxiv:2601.{i:05d}",
            f"Advances in {WORDS[i % len(WORDS)]} with {WORDS[(i + 3) % len(WORDS)]}",
            f"We study {WORDS[i % len(WORDS)]} for large models; results on {WORDS[(i + 5) % len(WORDS)]}.",
            f"https://arxiv.org/abs/2601.{i:05d}",
            ("A. Author", "B. Author"),
            now - timedelta(hours=2),
            "bench",
        )
        for i in range(n)
    ]


@contextmanager
def schema() -> Iterator[str]:
    """A fresh PostgreSQL schema; its URL."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(
        PG.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
        try:
            yield f"{PG}?options=-csearch_path%3D{name}"
        finally:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


def count_sent(store: Store) -> int:
    """Digests confirmed sent."""
    return len(store.digests_with_status("sent"))


def run_inline(url: str, smtp: str, subs: list[Subscriber], n_entries: int) -> tuple[float, float]:
    """The single process: plan, then claim → send → confirm one by one. (match s, send s)."""
    store = Store(url)
    now = datetime.now(UTC)
    store.upsert_entries(entries(n_entries, now), now)
    settings = Settings(database_url=url, smtp_url=smtp, smtp_rate=100000, from_addr=FROM)
    t0 = time.perf_counter()
    plans = plan_digests(settings, store, subs, now).plans
    t1 = time.perf_counter()
    c1 = time.process_time()
    d = Deliverer(settings, store)
    for p in plans:
        d.deliver(p)
    d.close()
    t2 = time.perf_counter()
    print(
        f"  single process: {(time.process_time() - c1) * 1000 / len(subs):.1f} ms CPU per digest "
        f"(claim + render + send + confirm)",
        flush=True,
    )
    assert count_sent(store) == len(subs), "not every digest was sent"
    store.close()
    return t1 - t0, t2 - t1


def run_pool(
    url: str, smtp: str, subs: list[Subscriber], n_entries: int, workers: int, folder: Path
) -> tuple[float, float, float]:
    """Dispatch from this process to `workers` worker processes.

    Returns (dispatch s, until all sent s, digests/s once the dispatcher was done).
    """
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    config = folder / f"{queue}.toml"
    config.write_text("[smtp]\nrate = 100000\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGESTBOT_")}
    env.update(
        {
            "DIGESTBOT_CONFIG": str(config),
            "DIGESTBOT_DATABASE_URL": url,
            "DIGESTBOT_BROKER_URL": REDIS,
            "DIGESTBOT_QUEUE": queue,
            "DIGESTBOT_SMTP_URL": smtp,
            "DIGESTBOT_FROM": FROM,
            "PYTHONPATH": str(ROOT),
        }
    )
    settings = Settings(
        database_url=url,
        broker_url=REDIS,
        queue=queue,
        smtp_url=smtp,
        smtp_rate=100000,
        from_addr=FROM,
    )
    app = make_app(settings)
    store = Store(url)
    now = datetime.now(UTC)
    store.upsert_entries(entries(n_entries, now), now)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bot", "worker", "--loglevel", "WARNING"],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(workers)
    ]
    try:
        deadline = time.monotonic() + 120
        while len(app.control.ping(timeout=0.5) or []) < workers:
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not start")
        cpu0 = sum(_cpu_s(p.pid) for p in procs)
        t0 = time.perf_counter()
        own0 = time.process_time()
        dispatch_due(settings, store, subs, now, app)
        own = time.process_time() - own0
        t1 = time.perf_counter()
        sent_at_t1 = count_sent(store)
        while count_sent(store) < len(subs):
            time.sleep(0.1)
        t2 = time.perf_counter()
        cpu = sum(_cpu_s(p.pid) for p in procs) - cpu0
        rss = [_rss_mb(p.pid) for p in procs]
        print(
            f"  {workers} worker(s): {cpu * 1000 / len(subs):.1f} ms worker CPU per digest, "
            f"{own * 1000 / len(subs):.1f} ms dispatcher CPU per digest (match + claim + enqueue), "
            f"resident memory {', '.join(f'{m:.0f} MB' for m in rss)}",
            flush=True,
        )
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait()
        store.close()
        import redis

        r = redis.Redis.from_url(REDIS)
        r.delete(
            queue,
            f"_kombu.binding.{queue}",
            f"_kombu.binding_permanent.{queue}",
            *r.keys(f"{queue}:*"),
        )
    after = (len(subs) - sent_at_t1) / (t2 - t1) if t2 > t1 and sent_at_t1 < len(subs) else 0.0
    return t1 - t0, t2 - t0, after


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def time_matching(url: str, n_subs: int, n_entries: int) -> float:
    """Seconds for `plan_digests` (the one-pass match) over `n_subs` due subscribers."""
    store = Store(url)
    now = datetime.now(UTC)
    store.upsert_entries(entries(n_entries, now), now)
    settings = Settings(database_url=url)
    subs = subscribers(n_subs)
    t0 = time.perf_counter()
    plan_digests(settings, store, subs, now)
    took = time.perf_counter() - t0
    store.close()
    return took


def time_claims(url: str, subs: list[Subscriber], n_entries: int, threads: int) -> float:
    """Claims per second of the dispatcher (plan time subtracted) with `threads` connections."""
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=url, broker_url=REDIS, queue=queue)
    app = make_app(settings)
    store = Store(url)
    now = datetime.now(UTC)
    store.upsert_entries(entries(n_entries, now), now)
    t0 = time.perf_counter()
    plan_digests(settings, store, subs, now)
    t1 = time.perf_counter()
    dispatch_due(settings, store, subs, now, app, threads=threads)
    t2 = time.perf_counter()
    store.close()
    import redis

    r = redis.Redis.from_url(REDIS)
    r.delete(queue, f"_kombu.binding.{queue}", f"_kombu.binding_permanent.{queue}")
    return len(subs) / max(1e-6, (t2 - t1) - (t1 - t0))


def main() -> None:
    """Run every scenario and print the figures side by side."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--subscribers", type=int, default=2000)
    ap.add_argument("--entries", type=int, default=30)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument(
        "--match",
        type=int,
        default=20000,
        help="subscribers for the matching-time figure (0: skip)",
    )
    args = ap.parse_args()
    subs = subscribers(args.subscribers)
    n = len(subs)
    print(
        f"digestbot scale benchmark: {n} subscribers, {args.entries} entries; PostgreSQL, Redis broker, "
        f"loopback SMTP sink; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    rows = []
    with smtp_sink() as smtp, TemporaryDirectory() as tmp:
        with schema() as url:
            match_s, send_s = run_inline(url, smtp, subs, args.entries)
        rows.append(
            (
                "single process (inline)",
                match_s,
                match_s + send_s,
                n / (match_s + send_s),
                n / send_s,
            )
        )
        for k in args.workers:
            with schema() as url:
                dispatch_s, total_s, after = run_pool(url, smtp, subs, args.entries, k, Path(tmp))
            rows.append(
                (
                    f"celery pool, {k} worker{'s' if k > 1 else ''}",
                    dispatch_s,
                    total_s,
                    n / total_s,
                    after,
                )
            )
    print(
        f"\n{'run':28} {'match/dispatch s':>16} {'total s':>8} {'digests/s':>10} {'send-only/s':>12}"
    )
    for name, first, total, rate, send_rate in rows:
        print(
            f"{name:28} {first:16.2f} {total:8.2f} {rate:10.1f} {(f'{send_rate:.1f}' if send_rate else '-'):>12}"
        )
    print(
        "(inline 'match' is plan_digests; pool 'dispatch' is plan_digests + claims + enqueue; total runs from\n"
        " the start of matching to the last digest confirmed; send-only: inline after matching, pool after dispatch)"
    )
    claims = []
    for threads in (1, 2, 4):
        with schema() as url:
            claims.append(
                f"{time_claims(url, subs, args.entries, threads):.0f}/s with {threads} connection{'s' if threads > 1 else ''}"
            )
    print(f"dispatcher claim + enqueue rate: {', '.join(claims)}")
    if args.match:
        with schema() as url:
            took = time_matching(url, args.match, args.entries)
        print(
            f"\nmatching: {args.match} subscribers x {args.entries} entries in {took:.2f} s "
            f"= {took * 100000 / args.match:.1f} s per 100k subscribers (linear in subscribers x entries)"
        )


if __name__ == "__main__":
    main()
