"""The Slack app (issue 18): `/papers`, direct-message subscribers, App Home, installs into any
workspace. Its modules are imported by name; this package imports nothing, so the Slack channel
may use `installs` without importing the web routes."""
