"""digestbot: a personal research digest by email or Slack."""

__version__ = "0.1.0"
