"""A digestbot folder on disk for the tests that run `digestbot` as a process."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FEED = REPO / "examples" / "papers.xml"


def write_project(
    root: Path,
    subscribers: int,
    *,
    slack: bool = False,
    schedule: str = "0 8 * * *",
    timezone: str = "UTC",
    database_url: str = "",
) -> Path:
    """digestbot.toml (the example feed) and N subscriber files in `root`; returns the config path."""
    subs = root / "subscriptions"
    subs.mkdir(parents=True, exist_ok=True)
    for n in range(subscribers):
        dest = f'slack_channel = "C{n:05d}"' if slack else f'email = "reader{n:04d}@example.org"'
        (subs / f"s{n:04d}.toml").write_text(
            f'{dest}\nschedule = "{schedule}"\ntimezone = "{timezone}"\nmax_items = 3\n\n'
            '[interests]\nkeywords = ["quantization", "KV cache"]\n',
            encoding="utf-8",
        )
    db = database_url or f"sqlite:///{root / 'digestbot.db'}"
    config = root / "digestbot.toml"
    config.write_text(
        f'database_url = "{db}"\nsubscriptions_dir = "subscriptions"\noutbox_dir = "outbox"\n\n'
        f'[smtp]\nrate = 10000\n\n[[sources]]\nname = "examples"\ntype = "file"\npath = "{FEED}"\n',
        encoding="utf-8",
    )
    return config
