"""The web front: subscribe with double opt-in, manage, unsubscribe (RFC 8058), feedback, Slack buttons."""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
