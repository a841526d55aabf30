#!/usr/bin/env python3
"""Matching as users run it: `digestbot match --json` on subscriber files, and `plan_digests` over
a PostgreSQL store of web subscribers, each next to a bare pass in the same run.

Usage (from the project root):

    python benchmarks/match.py                         # both, full size
    python benchmarks/match.py --cli 10000             # match --json: 10,000 files × 1,000 entries
    python benchmarks/match.py --plan 10000 30000 100000   # plan_digests (needs PostgreSQL)
    python benchmarks/match.py --cli 0 --plan 0 --core 100000   # the matrix core alone

`--cli N`: N synthetic subscriber files and 1,000 entries (an HF daily-papers JSON file), then
`digestbot match --entries … --subscriptions … --json > file` in a process of its own, against a
bare pass in a process of its own that reads the same files (tomllib, json), fits a plain tf-idf
and takes each subscriber's top 10 in one sparse product, writing the same JSON shape.

`--plan N…`: for each N, a fresh schema in DIGESTBOT_TEST_DATABASE_URL (default the local test
server) with N active web subscribers (all due) and 1,000 entries; then, in a process of its
own, the roster read from the store (`load_roster`) and `plan_digests` for all of them — and a
bare pass (the same rows in one query, tf-idf, top 10) likewise.

Each process's wall time, CPU time and peak resident memory (its maxrss) are printed, with the
ratios the issue sets targets for (medians of `--repeat` alternating runs; for the plan also
the CPU of the roster and the plan inside the process, which leaves out starting Python and
importing). The machine may be shared: read the CPU figures.
Synthetic data: see `benchmarks/_synthetic.py` (seeded).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

PG = os.environ.get(
    "DIGESTBOT_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@dataclass(frozen=True, slots=True)
class Cost:
    """What one measured process took."""

    wall: float
    cpu: float
    peak_mb: float

    def __str__(self) -> str:
        return f"{self.wall:6.2f} s wall, {self.cpu:6.2f} s CPU, peak {self.peak_mb:5.0f} MB"


def median_cost(costs: list[Cost]) -> Cost:
    """The median of each figure over repeated runs."""
    from statistics import median

    return Cost(*(median(getattr(c, k) for c in costs) for k in ("wall", "cpu", "peak_mb")))


def measure(cmd: list[str], stdout: Path | None = None) -> Cost:
    """Run `cmd` (Python, this tree first on the path); its wall time, CPU time and maxrss."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = stdout.open("wb") if stdout else subprocess.DEVNULL
    try:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, env=env, stdout=out, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    finally:
        if stdout:
            out.close()  # type: ignore[union-attr]
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:6])}… exited {proc.returncode}")
    return Cost(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


# --- the bare pass ------------------------------------------------------------------------------
def bare_top10(sub_texts: list[str], entry_texts: list[str]) -> list[list[tuple[int, float]]]:
    """Fit a plain tf-idf on the entries, one sparse product, each subscriber's top 10."""
    import numpy as np
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(sublinear_tf=True, stop_words="english", dtype=np.float32)
    x = vec.fit_transform(entry_texts)
    scores = (vec.transform(sub_texts) @ x.T).toarray()
    top = np.argpartition(-scores, min(10, scores.shape[1] - 1), axis=1)[:, :10]
    return [
        sorted(((int(e), float(scores[r, e])) for e in row), key=lambda p: -p[1])
        for r, row in enumerate(top)
    ]


def _interest_text(i: dict[str, object]) -> str:
    parts = [str(i.get("description", ""))]
    for key in ("keywords", "topics"):
        value = i.get(key, [])
        parts += [str(v) for v in value] if isinstance(value, list) else []
    return " ".join(parts)


def bare_files(folder: Path, papers: Path) -> None:
    """The bare pass over files: read them, tf-idf, top 10 each, the same JSON on stdout."""
    import tomllib

    files = sorted(folder.glob("*.toml"))
    subs = [(p.stem, tomllib.loads(p.read_text(encoding="utf-8"))) for p in files]
    items = json.loads(papers.read_text(encoding="utf-8"))
    ids = [f"arxiv:{i['paper']['id']}" for i in items]
    texts = [f"{i['paper']['title']}. {i['paper']['summary']}" for i in items]
    top = bare_top10([_interest_text(raw.get("interests", {})) for _, raw in subs], texts)
    out = sys.stdout
    out.write('{"subscribers": [')
    out.writelines(
        ("\n" if n else "")
        + ("," if n else "")
        + json.dumps({"id": sid, "entries": [{"id": ids[e], "score": s} for e, s in ranked]})
        for n, ((sid, _), ranked) in enumerate(zip(subs, top, strict=True))
    )
    out.write("\n]}\n")


def bare_store(url: str) -> None:
    """The bare pass over the store: the web subscribers and entries in a query each, top 10."""
    from sqlalchemy import create_engine, select

    from bot.store import entries, web_subscribers

    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(web_subscribers.c.id, web_subscribers.c.interests).where(
                web_subscribers.c.status == "active"
            )
        ).all()
        found = conn.execute(select(entries.c.id, entries.c.title, entries.c.summary)).all()
    subs = [_interest_text(json.loads(r.interests)) for r in rows]
    top = bare_top10(subs, [f"{e.title}. {e.summary}" for e in found])
    print(sum(len(t) for t in top), "picked")


# --- the measured runs --------------------------------------------------------------------------
def plan_store(url: str) -> None:
    """What `run --once` does before sending: the roster from the store, one `plan_digests`."""
    from bot.config import Settings
    from bot.delivery import plan_digests
    from bot.roster import load_roster
    from bot.store import Store

    settings = Settings(database_url=url, subscriptions_dir=Path(tempfile.mkdtemp()))
    store = Store(url)
    t0, c0 = time.perf_counter(), time.process_time()
    subs, _ = load_roster(settings, store)
    t1, c1 = time.perf_counter(), time.process_time()
    due = plan_digests(settings, store, subs, datetime.now(UTC))
    t2, c2 = time.perf_counter(), time.process_time()
    items = sum(len(p.items) for p in due.plans)
    print(json.dumps({"roster": [t1 - t0, c1 - c0], "plan": [t2 - t1, c2 - c1], "items": items}))
    store.close()


def run_cli(n: int, n_entries: int, repeat: int) -> None:
    """`digestbot match --json` on n subscriber files against the bare pass, each `repeat`
    times, alternating; the medians and their ratio."""
    from _synthetic import generate, write_daily_papers, write_subscriber_files

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        entries, subs = generate(n_entries, n)
        write_subscriber_files(subs, folder / "subs")
        write_daily_papers(entries, folder / "papers.json")
        (folder / "digestbot.toml").write_text(f'database_url = "sqlite:///{folder}/x.db"\n')
        del entries, subs
        me = [sys.executable, str(Path(__file__).resolve())]
        bares, clis = [], []
        for _ in range(repeat):
            bares.append(
                measure(
                    [*me, "--bare-files", str(folder / "subs"), str(folder / "papers.json")],
                    folder / "bare.json",
                )
            )
            clis.append(
                measure(
                    [
                        *[sys.executable, "-m", "bot", "--config", str(folder / "digestbot.toml")],
                        *["match", "--entries", str(folder / "papers.json")],
                        *["--subscriptions", str(folder / "subs"), "--json"],
                    ],
                    folder / "cli.json",
                )
            )
        bare, cli = median_cost(bares), median_cost(clis)
        got = json.loads((folder / "cli.json").read_text(encoding="utf-8"))["subscribers"]
        selected = sum(len(s["entries"]) for s in got)
        size = (folder / "cli.json").stat().st_size / 1e6
    print(f"match --json, {n:,} subscriber files × {n_entries:,} entries (medians of {repeat}):")
    print(f"  digestbot match --json: {cli}  ({selected:,} selected, {size:.1f} MB of JSON)")
    print(f"  bare pass (tomllib, tf-idf, top 10): {bare}")
    print(
        f"  ratio: {cli.wall / bare.wall:.2f}× wall, {cli.cpu / bare.cpu:.2f}× CPU (target ≤ 2.0×)"
    )


@contextmanager
def schema() -> Iterator[str]:
    """A fresh PostgreSQL schema; its URL (dropped afterwards)."""
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:10]}"
    base = PG.split("?")[0]
    with psycopg.connect(
        base.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as c:
        c.execute(f"CREATE SCHEMA {name}")
        try:
            yield f"{base}?options=-csearch_path%3D{name}"
        finally:
            c.execute(f"DROP SCHEMA {name} CASCADE")


def fill_store(url: str, n: int, n_entries: int) -> None:
    """n active web subscribers (due every minute) and n_entries entries published today."""
    from dataclasses import asdict

    from _synthetic import generate
    from sqlalchemy import insert

    from bot.store import Store, web_subscribers

    entries, subs = generate(n_entries, n)
    now = datetime.now(UTC)
    store = Store(url)
    store.upsert_entries([e.__class__(**{**asdict(e), "published": now}) for e in entries], now)
    rows = [
        {
            "id": s.id,
            "email": s.email,
            "email_key": s.email,
            "name": "",
            "interests": json.dumps(asdict(s.interests)),
            "schedule": s.schedule,
            "timezone": s.timezone,
            "max_items": s.max_items,
            "status": "active",
            "created_at": now,
            "updated_at": now,
            "requested_at": now,
            "confirmed_at": now,
        }
        for s in subs
    ]
    with store.begin() as conn:
        for lo in range(0, len(rows), 5000):
            conn.execute(insert(web_subscribers), rows[lo : lo + 5000])
    store.close()


def run_plan(sizes: list[int], n_entries: int, repeat: int = 1) -> None:
    """plan_digests over N web subscribers in PostgreSQL for each N, against the bare pass
    (`repeat` alternating runs of each per size, medians)."""
    from statistics import median

    me = [sys.executable, str(Path(__file__).resolve())]
    print(
        f"plan_digests, web subscribers in PostgreSQL × {n_entries:,} entries "
        f"(medians of {repeat}):"
    )
    costs: dict[int, Cost] = {}
    inside: dict[int, float] = {}  # CPU of the roster and the plan, without starting Python
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            with schema() as url:
                fill_store(url, n, n_entries)
                bares, plans, runs = [], [], []
                for _ in range(repeat):
                    bares.append(measure([*me, "--bare-store", url]))
                    plans.append(measure([*me, "--plan-store", url], Path(tmp) / "plan.json"))
                    runs.append(json.loads((Path(tmp) / "plan.json").read_text(encoding="utf-8")))
            bare, plan = median_cost(bares), median_cost(plans)
            parts = {
                "roster": [0.0, median(r["roster"][1] for r in runs)],
                "plan": [0.0, median(r["plan"][1] for r in runs)],
                "items": runs[0]["items"],
            }
            costs[n] = plan
            inside[n] = median(r["roster"][1] + r["plan"][1] for r in runs)
            print(f"  {n:>7,} subscribers: plan_digests {plan}")
            print(
                f"  {'':>7}   of which roster {parts['roster'][1]:.2f} s CPU, plan "
                f"{parts['plan'][1]:.2f} s CPU ({parts['items']:,} items)"
            )
            print(f"  {'':>7}   bare pass     {bare}  → {plan.cpu / bare.cpu:.1f}× CPU")
    big = max(costs)
    for n in sorted(costs):
        if n != big:
            print(
                f"  {n:,} costs {costs[n].cpu / costs[big].cpu:.2f}× of {big:,} in CPU "
                f"({costs[n].wall / costs[big].wall:.2f}× wall; roster + plan alone "
                f"{inside[n] / inside[big]:.2f}×; linear: {n / big:.2f}, target ≤ 0.35 at 30k)"
            )
    if 100_000 in costs:
        c = costs[100_000]
        print(
            f"  100,000: {c.cpu:.1f} s CPU, {c.wall:.1f} s wall, {c.peak_mb / 1024:.2f} GB "
            "(target ≤ 15 s and ≤ 2 GB)"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cli", type=int, default=10_000, help="subscriber files (0: skip)")
    ap.add_argument("--plan", type=int, nargs="*", default=[10_000, 30_000, 100_000])
    ap.add_argument("--entries", type=int, default=1000)
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs of each measured process and its bare pass"
    )
    ap.add_argument("--core", type=int, default=0, help="the matrix core alone at N (0: skip)")
    ap.add_argument("--bare-files", nargs=2, metavar=("DIR", "PAPERS"), help=argparse.SUPPRESS)
    ap.add_argument("--bare-store", metavar="URL", help=argparse.SUPPRESS)
    ap.add_argument("--plan-store", metavar="URL", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.bare_files:
        return bare_files(Path(args.bare_files[0]), Path(args.bare_files[1]))
    if args.bare_store:
        return bare_store(args.bare_store)
    if args.plan_store:
        return plan_store(args.plan_store)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} at start")
    if args.cli:
        run_cli(args.cli, args.entries, args.repeat)
    sizes = [n for n in args.plan if n]
    if sizes:
        run_plan(sizes, args.entries, args.repeat)
    if args.core:
        from _core import run_core

        run_core(args.core, args.entries)
    return None


if __name__ == "__main__":
    main()
