"""`digestbot init`: a working setup in a folder — config, an example subscriber, feed and templates."""

from __future__ import annotations

from pathlib import Path

from .errors import ConfigError
from .render import template_dirs

_HERE = Path(__file__).resolve().parent
# The example feed ships in the wheel as bot/data/papers.xml (pyproject maps examples/ to bot.data);
# in a source checkout it is examples/papers.xml.
FEED_CANDIDATES = (_HERE / "data" / "papers.xml", _HERE.parent / "examples" / "papers.xml")
TEMPLATES = ("email.html.j2", "email.txt.j2", "slack_item.md.j2")

CONFIG = """\
# digestbot's configuration, written by `digestbot init`. Check it with `digestbot check`.
# Environment variables win over this file. Secrets live only in the environment:
# DIGESTBOT_SMTP_PASSWORD, SLACK_BOT_TOKEN, DIGESTBOT_SECRET_KEY.
# Relative paths are relative to this file's folder.

# database_url = "sqlite:///digestbot.db"   # DIGESTBOT_DATABASE_URL; PostgreSQL: postgresql+psycopg://user@host/db
subscriptions_dir = "subscriptions"          # one <subscriber>.toml per subscriber (DIGESTBOT_SUBSCRIPTIONS)
{outbox_line}
# (without outbox_dir, a digest whose channel is not set up waits until it is: DIGESTBOT_SMTP_URL,
#  SLACK_BOT_TOKEN; with it, such digests are written there as files and sent to no one, and every
#  run says how many. DIGESTBOT_OUTBOX moves the folder; it does not choose it.)
templates_dir = "templates"                  # your copies of the templates; delete one to use the bundled one
# base_url = "http://localhost:8000"         # where 👍/👎 and unsubscribe links point (DIGESTBOT_BASE_URL)
# from = "digestbot <digestbot@localhost>"   # the sender (DIGESTBOT_FROM)
# fetch_interval_minutes = 30                # how often `digestbot run` fetches each source
# corpus_days = 30                           # days of entries the matcher learns its vocabulary from
# lookback_days = 7                          # entries older than this are not offered to a first digest

# [smtp]                                     # without it (or DIGESTBOT_SMTP_URL), email digests wait
# url = "smtp://digest@mail.example.org:587" # DIGESTBOT_SMTP_URL; the password in DIGESTBOT_SMTP_PASSWORD
# rate = 10                                  # messages per second at most

# [slack]
# api_url = "https://slack.com/api/"         # DIGESTBOT_SLACK_API_URL; the token in SLACK_BOT_TOKEN

[[sources]]
name = "examples"
type = "file"                  # hf-daily | arxiv | rss | file
path = "examples/papers.xml"   # a local RSS/Atom file or Hugging Face daily-papers JSON

# [[sources]]
# name = "hf"
# type = "hf-daily"            # Hugging Face Daily Papers

# [[sources]]
# name = "arxiv-lg"
# type = "arxiv"
# url = "https://rss.arxiv.org/rss/cs.LG"
# interval_minutes = 60
"""

SUBSCRIBER = """\
# An example subscriber, written by `digestbot init`. The file name (example) is the subscriber id.
# Copy this file once per subscriber; `digestbot check` names any mistake with its file and key.
name = "Example Reader"
email = "you@example.org"       # or slack_channel = "#papers", or slack_webhook_env = "SLACK_WEBHOOK_ME"
schedule = "0 8 * * *"          # cron, in `timezone`: every day at 08:00
timezone = "UTC"                # an IANA name, e.g. "Europe/Berlin"
max_items = 10                  # at most this many entries per digest

[interests]
description = "Quantization and efficient inference of large language models"
keywords = ["quantization", "low-bit", "KV cache"]   # phrases, matched on word boundaries
exclude = ["medical"]                                # an entry that matches one is never sent
# topics = ["efficient-inference"]                   # slugs from `digestbot topics`
# authors = ["Song Han"]                             # always send their papers
"""

TEMPLATES_README = """\
These templates override the ones bundled with digestbot (templates_dir in digestbot.toml).
Edit them freely; delete a file to go back to the bundled version of it. After upgrading
digestbot, compare your copies with the bundled ones (`digestbot init` in an empty folder
writes fresh copies) — a new version may pass new variables.

email.html.j2     the HTML part of the email (autoescaped)
email.txt.j2      the plain-text part of the email
slack_item.md.j2  one entry of a Slack digest (Slack mrkdwn; use the `slack` filter on feed text)
"""


def example_feed() -> bytes:
    """The example feed that ships with digestbot."""
    for path in FEED_CANDIDATES:
        if path.is_file():
            return path.read_bytes()
    raise ConfigError("the example feed is missing from this installation; reinstall digestbot")


def bundled_template(name: str) -> str:
    """The text of a bundled template."""
    for folder in template_dirs(None):
        if (folder / name).is_file():
            return (folder / name).read_text(encoding="utf-8")
    raise ConfigError(
        f"the bundled template {name} is missing from this installation; reinstall digestbot"
    )


def config_text(outbox: bool = False) -> str:
    """The digestbot.toml `init` writes; `outbox`: with outbox_dir chosen, not commented out."""
    if outbox:
        line = 'outbox_dir = "outbox"                        # digests go to files here, to no one (a trial)'
    else:
        line = '# outbox_dir = "outbox"                      # uncomment to write digests to files, to no one'
    return CONFIG.format(outbox_line=line)


def plan(target: Path, outbox: bool = False) -> dict[Path, bytes]:
    """Every file `init` writes into `target`, with its content (`outbox`: see `config_text`)."""
    files: dict[Path, bytes] = {
        target / "digestbot.toml": config_text(outbox).encode(),
        target / "subscriptions" / "example.toml": SUBSCRIBER.encode(),
        target / "examples" / "papers.xml": example_feed(),
        target / "templates" / "README": TEMPLATES_README.encode(),
    }
    for name in TEMPLATES:
        files[target / "templates" / name] = bundled_template(name).encode()
    return files


def scaffold(target: Path, outbox: bool = False) -> list[Path]:
    """Write a working setup into `target`; refuse, writing nothing, if any of its files exists."""
    files = plan(target, outbox)
    taken = [p for p in files if p.exists() or p.is_symlink()]
    if taken:
        names = ", ".join(str(p) for p in taken)
        raise ConfigError(
            f"{names} already exist{'s' if len(taken) == 1 else ''}; digestbot init never overwrites — "
            "run it in an empty folder, or move these away first"
        )
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return list(files)
