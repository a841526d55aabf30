"""The SMTP peer of the sending benchmarks: aiosmtpd's Sink handler in its own process on a free
loopback port (so it does not share the measured process's GIL)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager


def start_sink() -> tuple[subprocess.Popen[bytes], int]:
    """The sink's process, once it accepts connections, and its port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"]
        + ["-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("the aiosmtpd sink did not start")


@contextmanager
def smtp_sink() -> Iterator[str]:
    """A running sink for the length of the block; its SMTP URL."""
    proc, port = start_sink()
    try:
        yield f"smtp://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait()
