"""README's "adding a channel" example, as written there: one module that registers a webhook
channel; a digest goes through it, from a subscription file to a JSON POST on loopback."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest
from _digests import digest, subscriber

from bot.channels import CHANNELS, channel_for, rates
from bot.config import Settings
from bot.errors import PermanentSendError, TransientSendError
from bot.subscriptions import parse_subscriber

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def readme_channel() -> str:
    """The Python block of README's "adding a channel" section that registers a channel."""
    blocks: list[str] = re.findall(
        r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL
    )
    (block,) = [b for b in blocks if '@register("webhook")' in b]
    return block


@dataclass
class Hook:
    """An HTTP server on loopback that records each POST and answers with `status`."""

    status: int = 200
    posts: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def hook() -> Iterator[Hook]:
    rec = Hook()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            rec.posts.append((self.path, dict(self.headers.items()), body))
            self.send_response(rec.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[ModuleType]:
    """README's module, imported as a user would import theirs; unregistered afterwards."""
    path = tmp_path / "webhook_channel.py"
    path.write_text(readme_channel(), encoding="utf-8")
    spec = importlib.util.spec_from_file_location("webhook_channel", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        yield module
    finally:
        CHANNELS.pop("webhook", None)


def test_a_digest_goes_through_the_readme_webhook_from_a_subscription_file(
    tmp_path: Path, hook: Hook
) -> None:
    """`digestbot run --once` with README's module imported first: the digest is POSTed as JSON."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "webhook_channel.py").write_text(readme_channel(), encoding="utf-8")
    (tmp_path / "subscriptions").mkdir()
    (tmp_path / "subscriptions" / "dave.toml").write_text(
        f'name = "Dave"\nwebhook_url = "{hook.url}"\nmax_items = 3\n'
        '[interests]\ndescription = "Post-training quantization of large language models"\n'
        'keywords = ["quantization"]\n',
        encoding="utf-8",
    )
    (tmp_path / "digestbot.toml").write_text(
        f'database_url = "sqlite:///{tmp_path / "d.db"}"\nbase_url = "https://digest.example.org"\n'
        f'[[sources]]\nname = "examples"\ntype = "file"\npath = "{ROOT / "examples" / "papers.xml"}"\n',
        encoding="utf-8",
    )
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            "import runpy, webhook_channel; runpy.run_module('bot', run_name='__main__')",
            "run",
            "--once",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "PYTHONPATH": f"{plugins}:{ROOT}",
            "DIGESTBOT_SECRET_KEY": "k",
        },
    )
    assert run.returncode == 0, run.stderr
    assert "dave: sent " in run.stdout
    ((path, headers, body),) = hook.posts
    data = json.loads(body)
    assert path == "/hook" and headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == data["digest_id"] and data["digest_id"].startswith("dave.")
    assert 1 <= len(data["items"]) <= 3 and data["subject"].startswith(
        f"{len(data['items'])} new paper"
    )
    item = data["items"][0]
    assert item["title"] and item["url"].startswith("http")
    assert item["up_url"].startswith("https://digest.example.org/feedback/") and item[
        "up_url"
    ].endswith("/up")
    assert data["unsubscribe_url"].startswith("https://digest.example.org/unsubscribe/")
    assert not (tmp_path / "outbox").exists()  # the webhook served dave, not the outbox


def test_the_webhook_fields_rate_and_failures(webhook: ModuleType, hook: Hook) -> None:
    sub, problems = parse_subscriber(
        "dave", {"webhook_url": hook.url, "interests": {"keywords": ["x"]}}, "dave.toml"
    )
    assert problems == [] and sub is not None
    assert sub.contact == {"webhook_url": hook.url} and sub.address == hook.url
    assert channel_for(sub, Settings()) == "webhook"
    assert rates(Settings())["webhook"] == (5.0, True)

    ch = CHANNELS["webhook"](Settings(base_url="https://digest.example.org", secret_key="k"))
    receipt = ch.send(digest(2, sub=sub, did="dave.20260302T0700Z"))
    assert (receipt.channel, receipt.destination, receipt.detail) == ("webhook", hook.url, "200")
    hook.status = 503
    with pytest.raises(TransientSendError, match=r"^the webhook answered 503; will retry$"):
        ch.send(digest(1, sub=sub, did="dave.x"))
    hook.status = 404
    with pytest.raises(
        PermanentSendError, match=r"answered 404; check webhook_url in the subscription file$"
    ):
        ch.send(digest(1, sub=sub, did="dave.y"))
    with pytest.raises(PermanentSendError, match=r"more than the webhook takes \(100000\)"):
        ch.send(digest(200, sub=sub, titles=["x" * 3000] * 200, did="dave.z"))
    assert len(hook.posts) == 3  # the one too large never left


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        (
            {"webhook_url": "ftp://x"},
            "webhook_url",
            "'ftp://x' is not an http(s) URL; write e.g. webhook_url = \"https://hooks.example.org/papers\"",
        ),
        (
            {"webhook_url": "https://h", "email": "a@example.org"},
            "email",
            "give either an email address or a webhook, not both; make one file per destination",
        ),
        (
            {},
            "email",
            (
                'no delivery address; give email = "…", slack_channel = "#…", '
                'slack_webhook_env = "VAR", slack_user = "T…:U…" or webhook_url = "https://…"'
            ),
        ),
    ],
)
def test_subscription_files_name_the_webhook_key_with_its_fix(
    webhook: ModuleType, raw: dict[str, str], key: str, message: str
) -> None:
    sub, problems = parse_subscriber("dave", {**raw, "interests": {"keywords": ["x"]}}, "dave.toml")
    assert sub is None and [(p.key, p.message) for p in problems] == [(key, message)]


def test_the_module_names_no_other_file_to_change() -> None:
    """The example is one module: it imports only what bot already offers."""
    imports = re.findall(r"^from (bot[.\w]*) import", readme_channel(), re.MULTILINE)
    assert imports == ["bot.channels", "bot.errors", "bot.models"]
    assert "webhook" not in CHANNELS  # nothing registered it but the tests that import it
    assert subscriber().contact == {}
