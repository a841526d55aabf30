#!/usr/bin/env python3
"""The daemon against `run --once`: N subscribers due the same minute over the 1,504 real HF papers.

Usage (from the project root):  python benchmarks/scheduler.py [--subscribers 2000]

1. A project in a temporary folder: the HF daily-papers archive of
   ../shared/fixtures/hf/hf_daily_papers_archive_2025-12_2026-08_1504papers.json as a `file`
   source (skipped, with the reason, when it is absent), `lookback_days` and `corpus_days` wide
   enough to offer all of it, the outbox as the channel, and N subscriber files with varied
   interests, all scheduled for the minute that has just begun. `digestbot fetch` fills the store.
2. `digestbot run --once`: every subscriber's digest for that minute, in one process — timed
   from its start to its exit.
3. The subscriber files are moved to a minute a little ahead (so nothing is due at start: the
   ledger holds a later slot), and `digestbot run` is started on the same store. Timed: from
   that minute to the moment the ledger holds every subscriber's digest for it.

Printed: both times, their ratio (target ≤ 1.5×), the daemon's log line for each digest pass
(how many subscribers each served, how many fits), and each process's CPU time and peak memory.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARCHIVE = (
    ROOT.parent
    / "shared"
    / "fixtures"
    / "hf"
    / "hf_daily_papers_archive_2025-12_2026-08_1504papers.json"
)
TOPICS = (
    "quantization",
    "diffusion models",
    "retrieval augmented generation",
    "reinforcement learning",
    "speech recognition",
    "graph neural networks",
    "LLM agents",
    "vision language models",
    "video generation",
    "mixture of experts",
    "code generation",
    "reasoning",
    "robotics",
    "3D reconstruction",
    "KV cache",
    "alignment",
    "benchmarks",
    "multimodal",
    "long context",
    "image editing",
)


def cron_at(t: datetime) -> str:
    """A cron line that fires at `t`'s minute (UTC) on that date only (once a year)."""
    return f"{t.minute} {t.hour} {t.day} {t.month} *"


def write_project(root: Path, n: int, when: datetime) -> Path:
    """The config and n subscriber files due at `when`; returns the config path."""
    subs = root / "subscriptions"
    subs.mkdir(parents=True, exist_ok=True)
    write_schedules(subs, n, when)
    config = root / "digestbot.toml"
    config.write_text(
        f'database_url = "sqlite:///{root / "digestbot.db"}"\nsubscriptions_dir = "subscriptions"\n'
        'outbox_dir = "outbox"\nlookback_days = 3650\ncorpus_days = 3650\n\n'
        f'[[sources]]\nname = "hf"\ntype = "file"\npath = "{ARCHIVE}"\n',
        encoding="utf-8",
    )
    return config


def write_schedules(folder: Path, n: int, when: datetime) -> None:
    """(Re)write the n subscriber files, all scheduled at `when`."""
    for i in range(n):
        a, b = TOPICS[i % len(TOPICS)], TOPICS[(i * 7 + 3) % len(TOPICS)]
        (folder / f"b{i:05d}.toml").write_text(
            f'email = "b{i:05d}@example.org"\nschedule = "{cron_at(when)}"\nmax_items = 10\n\n'
            f'[interests]\ndescription = "Papers on {a} and {b}"\n'
            f'keywords = ["{a}", "{b}"]\n',
            encoding="utf-8",
        )


def digestbot(config: Path, *args: str) -> list[str]:
    """The command line for `digestbot --config config args…` with this tree first."""
    return [sys.executable, "-m", "bot", "--config", str(config), *args]


ENV = {**os.environ, "PYTHONPATH": str(ROOT), "DIGESTBOT_SMTP_URL": "", "SLACK_BOT_TOKEN": ""}


def done_for(db: Path, slot: datetime) -> int:
    """How many digests for `slot` the ledger holds as sent or empty."""
    from bot.store import Store

    store = Store(f"sqlite:///{db}")
    try:
        return sum(1 for r in store.digests_with_status("sent", "empty") if r.slot == slot)
    finally:
        store.close()


def run_once(config: Path) -> tuple[float, float, float]:
    """`digestbot run --once`: (wall s, CPU s, peak MB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        digestbot(config, "-q", "run", "--once"),
        env=ENV,
        cwd=config.parent,
        stdout=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("digestbot run --once failed")
    return time.perf_counter() - t0, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def daemon(config: Path, n: int, lead: float) -> tuple[float, float, float, list[str]]:
    """`digestbot run` with every subscriber due one minute ahead: (s from the minute to the last
    digest, CPU s, peak MB, its digest-pass log lines)."""
    slot = (datetime.now(UTC) + timedelta(seconds=lead)).replace(second=0, microsecond=0)
    slot += timedelta(minutes=1)
    write_schedules(config.parent / "subscriptions", n, slot)
    log = config.parent / "daemon.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            digestbot(config, "-v", "run"),
            env=ENV,
            cwd=config.parent,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
        try:
            while datetime.now(UTC) < slot:
                if proc.poll() is not None:
                    raise SystemExit(f"digestbot run exited: {log.read_text()[-2000:]}")
                time.sleep(0.2)
            fired = time.perf_counter()
            db = config.parent / "digestbot.db"
            while done_for(db, slot) < n:
                if proc.poll() is not None:
                    raise SystemExit(f"digestbot run exited: {log.read_text()[-2000:]}")
                time.sleep(0.25)
            took = time.perf_counter() - fired
        finally:
            proc.send_signal(signal.SIGTERM)
            _, _, usage = os.wait4(proc.pid, 0)
    passes = [line for line in log.read_text().splitlines() if "digest pass:" in line]
    return took, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, passes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subscribers", type=int, default=2000)
    ap.add_argument(
        "--lead", type=float, default=20, help="seconds the daemon gets to start before the minute"
    )
    args = ap.parse_args()
    if not ARCHIVE.exists():
        print(f"skipped: {ARCHIVE} is absent (the shared fixtures are not on this machine)")
        return
    n = args.subscribers
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"daemon vs run --once: {n:,} subscribers, 1,504 HF papers; {os.cpu_count()} CPUs, load {load}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        now = datetime.now(UTC).replace(second=0, microsecond=0)
        config = write_project(root, n, now)
        subprocess.run(
            digestbot(config, "-q", "fetch"),
            env=ENV,
            cwd=root,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        once, once_cpu, once_mb = run_once(config)
        sent = done_for(root / "digestbot.db", now)
        print(
            f"  run --once: {once:6.2f} s wall, {once_cpu:6.2f} s CPU, peak {once_mb:.0f} MB ({sent} digests)"
        )
        shutil.rmtree(root / "outbox", ignore_errors=True)
        took, cpu, mb, passes = daemon(config, n, args.lead)
        print(
            f"  digestbot run, from the minute to the last digest: {took:6.2f} s "
            f"(whole process: {cpu:.2f} s CPU, peak {mb:.0f} MB)"
        )
        for line in passes:
            print(f"    {line.split('digest pass:', 1)[1].strip()}")
        print(f"  ratio: {took / once:.2f}× run --once (target ≤ 1.5×)")


if __name__ == "__main__":
    main()
