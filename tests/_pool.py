"""Shared pieces for the worker-pool tests: a Redis queue, subscribers and entries, worker processes.

The PostgreSQL schema and the SMTP server are the shared peers (tests/peers/, fixtures `pg_url` and
`smtp_server`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from _project import REPO as ROOT
from peers import SmtpPeer

from bot.models import Entry, Interests, Subscriber

BROKER_URL = os.environ.get("DIGESTBOT_TEST_BROKER_URL", "redis://127.0.0.1:6379/9")
REDIS_URL = os.environ.get("DIGESTBOT_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def redis_queue() -> Iterator[str]:
    """A queue name of our own on the test Redis; its keys are deleted afterwards."""
    redis = pytest.importorskip(
        "redis", reason="redis is not installed; pip install 'celery[redis]'"
    )
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as e:
        pytest.skip(f"no Redis at {REDIS_URL} ({e}); start one or set DIGESTBOT_TEST_REDIS_URL")
    queue = f"dtest-{uuid.uuid4().hex[:10]}"
    try:
        yield queue
    finally:
        keys = [
            queue,
            f"_kombu.binding.{queue}",
            f"_kombu.binding_permanent.{queue}",
            *client.keys(f"{queue}:*"),
        ]
        client.delete(*keys)
        client.close()
        if BROKER_URL.startswith("amqp"):
            from kombu import Connection

            with Connection(BROKER_URL) as conn:
                conn.default_channel.queue_delete(queue)


def subscribers(n: int, prefix: str = "s") -> list[Subscriber]:
    """`n` email subscribers due every minute, all interested in quantization."""
    interests = Interests("quantization of language models", ("quantization",))
    return [
        Subscriber(
            f"{prefix}{i:05d}",
            f"Sub {i}",
            f"{prefix}{i:05d}@example.org",
            schedule="* * * * *",
            timezone="UTC",
            max_items=5,
            interests=interests,
        )
        for i in range(n)
    ]


def entries(n: int = 6, now: datetime | None = None) -> list[Entry]:
    """`n` recent entries every subscriber above wants."""
    now = now or datetime.now(UTC)
    return [
        Entry(
            f"arxiv:2601.{i:05d}",
            f"Low-bit quantization of LLMs, part {i}",
            "We study quantization of large language models.",
            f"https://arxiv.org/abs/2601.{i:05d}",
            ("A. Author",),
            now - timedelta(hours=1),
            "test",
        )
        for i in range(n)
    ]


def write_config(folder: Path, rate: float) -> Path:
    """A digestbot.toml for the workers: no sources, the given SMTP rate."""
    (folder / "subscriptions").mkdir(exist_ok=True)
    path = folder / "digestbot.toml"
    path.write_text(
        f'subscriptions_dir = "subscriptions"\n[smtp]\nrate = {rate}\n', encoding="utf-8"
    )
    return path


@dataclass
class Pool:
    """Settings shared by the test process (the dispatcher) and its `digestbot worker` processes."""

    folder: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self) -> subprocess.Popen[bytes]:
        """Start one `digestbot worker` process."""
        log = open(self.folder / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115 (kept open for the child)
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "worker", "--loglevel", "WARNING"],
            cwd=self.folder,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        """Stop every worker this pool started."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def logs(self) -> str:
        """Every worker's log, for a failure message."""
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in sorted(self.folder.glob("worker-*.log"))
        )


def pool_env(folder: Path, pg_url: str, queue: str, smtp: SmtpPeer, rate: float) -> dict[str, str]:
    """The environment of a pool's processes."""
    config = write_config(folder, rate)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGESTBOT_")}
    env.update(
        {
            "DIGESTBOT_CONFIG": str(config),
            "DIGESTBOT_DATABASE_URL": pg_url,
            "DIGESTBOT_BROKER_URL": BROKER_URL,
            "DIGESTBOT_RATELIMIT_URL": REDIS_URL,
            "DIGESTBOT_QUEUE": queue,
            "DIGESTBOT_SMTP_URL": smtp.url,
            "DIGESTBOT_FROM": "digestbot <digest@example.org>",
            "PYTHONPATH": str(ROOT),
        }
    )
    return env
