"""The Slack app's manifest, made from the code: its command, events, scopes and routes under
`base_url`. `digestbot slack-manifest` prints it (JSON, which Slack's "From a manifest" takes as
it takes YAML); deploy/slack-app-manifest.yaml is the same for the placeholder base URL
(tests/test_deploy.py holds them equal)."""

from __future__ import annotations

from typing import Any

from .installs import SCOPES
from .routes import COMMAND, EVENTS

PLACEHOLDER = "https://digest.example.org"  # the base URL deploy/slack-app-manifest.yaml names


def manifest(base_url: str) -> dict[str, Any]:
    """The app manifest with every URL under `base_url` (no trailing slash needed)."""
    base = base_url.rstrip("/")
    return {
        "display_information": {
            "name": "digestbot",
            "description": "Your own digest of new papers, as a direct message.",
            "background_color": "#2c2d30",
        },
        "features": {
            "app_home": {
                "home_tab_enabled": True,
                "messages_tab_enabled": True,
                "messages_tab_read_only_enabled": True,
            },
            "bot_user": {"display_name": "digestbot", "always_online": False},
            "slash_commands": [
                {
                    "command": COMMAND,
                    "url": f"{base}/slack/commands",
                    "description": "Subscribe to your own paper digest",
                    "usage_hint": "subscribe <what you care about> | show | pause | help",
                    "should_escape": False,
                }
            ],
        },
        "oauth_config": {
            "redirect_urls": [f"{base}/slack/oauth_redirect"],
            "scopes": {"bot": list(SCOPES)},
        },
        "settings": {
            "event_subscriptions": {
                "request_url": f"{base}/slack/events",
                "bot_events": list(EVENTS),
            },
            "interactivity": {"is_enabled": True, "request_url": f"{base}/slack/actions"},
            "org_deploy_enabled": False,
            "socket_mode_enabled": False,
            "token_rotation_enabled": False,
        },
    }
