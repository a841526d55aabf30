"""`digestbot serve`: the web front."""

from __future__ import annotations

import click

from ._context import Context


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
    Slack's requests are checked with SLACK_SIGNING_SECRET.

    \b
    Example (behind a reverse proxy that serves https://digest.example.org):
      DIGESTBOT_BASE_URL=https://digest.example.org DIGESTBOT_SECRET_KEY=… digestbot serve --port 8000
    """
    import uvicorn

    from ..web import create_app

    settings = obj.settings()
    app = create_app(
        settings
    )  # logs a warning when DIGESTBOT_SECRET_KEY or SLACK_SIGNING_SECRET is unset
    click.echo(f"Serving on http://{host}:{port}/ (links point at {settings.base_url})", err=True)
    # proxy_headers: behind a local reverse proxy, rate limits see the client's address.
    uvicorn.run(app, host=host, port=port, proxy_headers=True, log_level="info")
