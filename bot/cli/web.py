"""`digestbot serve`: the web front."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import click

from ..config import Settings
from ..errors import ConfigError
from ._context import Context

DEFAULT_BASE_URL = Settings().base_url  # base_url when neither the file nor the environment sets it


@click.command()
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="The address to listen on (0.0.0.0: every interface).",
)
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="The port to listen on.",
)
@click.pass_obj
def serve(obj: Context, host: str, port: int) -> None:
    """Serve the web front: subscribe, manage, unsubscribe, 👍/👎 and Slack's buttons.

    Links in digests point at DIGESTBOT_BASE_URL; tokens are signed with DIGESTBOT_SECRET_KEY;
    Slack's requests are checked with SLACK_SIGNING_SECRET. Without DIGESTBOT_SECRET_KEY it
    serves only on loopback with loopback links; X-Forwarded-For counts only from the proxies in
    DIGESTBOT_TRUSTED_PROXIES.

    \b
    Example (behind a reverse proxy that serves https://digest.example.org):
      DIGESTBOT_BASE_URL=https://digest.example.org DIGESTBOT_SECRET_KEY=… digestbot serve --port 8000
    """
    import uvicorn

    from ..web import create_app
    from ..web.limits import refuse_development_key
    from ..web.mailer import NOWHERE
    from ..web.mailer import destination as mail_destination

    settings = obj.settings()
    if not settings.secret_keys:  # the development key only when nothing leaves this machine
        refuse_development_key(settings.base_url, host)
    settings = serving_settings(settings, host, port)
    app = create_app(settings)  # logs a warning when SLACK_SIGNING_SECRET is unset
    click.echo(f"Serving on http://{host}:{port}/ (links point at {settings.base_url})", err=True)
    where = mail_destination(settings)
    click.echo(f"Confirmation mail goes to {where}" if where else f"Warning: {NOWHERE}", err=True)
    # X-Forwarded-For is read by the app itself, only from DIGESTBOT_TRUSTED_PROXIES.
    uvicorn.run(
        app, host=host, port=port, proxy_headers=False, log_level="info", log_config=log_config()
    )


def log_config() -> dict[str, Any]:
    """uvicorn's own logging, each handler behind `SecretFilter`: its access log would print the
    signed links people open (a manage link acts for its subscriber) and Slack's OAuth code."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"secrets": {"()": "bot.masking.SecretFilter"}}
    for handler in config["handlers"].values():
        handler["filters"] = ["secrets"]
    return config


def serving_settings(settings: Settings, host: str, port: int) -> Settings:
    """The settings `serve` runs with: without base_url, links point at the address it serves.

    Unset base_url (its default) on a loopback address becomes `http://HOST:PORT`; on any other
    address it is refused, since links must name the address people reach the server by.
    """
    from ..web.limits import loopback

    if settings.base_url.rstrip("/") != DEFAULT_BASE_URL:
        return settings
    if not loopback(host):
        raise ConfigError(
            f"digestbot serve listens on {host} but base_url is not set, so links in mail would "
            "point at localhost; set DIGESTBOT_BASE_URL (or base_url in digestbot.toml) to the "
            "address people open, e.g. https://digest.example.org"
        )
    name = f"[{host.strip('[]')}]" if ":" in host else host
    return replace(settings, base_url=f"http://{name}:{port}")


@click.command("slack-manifest")
@click.option(
    "--base-url",
    default=None,
    help="The public address of `digestbot serve` (default: base_url / DIGESTBOT_BASE_URL).",
)
@click.pass_obj
def slack_manifest(obj: Context, base_url: str | None) -> None:
    """Print the Slack app's manifest for this installation's base_url (JSON).

    Paste it at api.slack.com/apps → Create New App → From a manifest: the /papers command,
    App Home, the events, the interactivity URL, the OAuth redirect and the bot scopes, every
    URL under base_url.

    \b
    Example:
      DIGESTBOT_BASE_URL=https://papers.lab.example digestbot slack-manifest > manifest.json
    """
    import json
    from urllib.parse import urlsplit

    from ..slack.manifest import manifest

    base = base_url or obj.settings(need_file=False).base_url
    if base.rstrip("/") == DEFAULT_BASE_URL.rstrip("/") and base_url is None:
        raise ConfigError(
            "base_url is not set, and Slack cannot reach localhost; set DIGESTBOT_BASE_URL "
            "(or base_url in digestbot.toml) to the https address of digestbot serve, or pass --base-url"
        )
    if urlsplit(base).scheme != "https" or not urlsplit(base).hostname:
        raise ConfigError(
            f"Slack sends requests only to https addresses, not {base!r}; give the https address "
            "of digestbot serve (behind its TLS proxy)"
        )
    click.echo(json.dumps(manifest(base), indent=2))
