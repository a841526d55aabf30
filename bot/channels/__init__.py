"""Channels: one module per way of delivering a digest, and a small registry.

A channel is a class in its own module, registered with `@register("name")`, that declares as
class data what the rest of digestbot needs (see `Channel`); the registry answers for all of
them: which channel serves a subscriber (`channel_for`), which subscription file keys exist
(`subscriber_fields`), the pool's rates (`rates`) and the config tables (`settings_tables`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..config import Settings
from ..models import Subscriber
from ._registry import CHANNELS, Channel, Field, Limits, Rate, channel_of, field_value, register

__all__ = [
    "CHANNELS",
    "Channel",
    "Field",
    "Limits",
    "Rate",
    "channel_for",
    "channel_of",
    "destination",
    "destination_problems",
    "field_value",
    "not_ready",
    "rates",
    "register",
    "settings_tables",
    "subscriber_fields",
    "unready_fix",
]


def channel_for(subscriber: Subscriber, settings: Settings) -> str:
    """The channel that serves this subscriber under these settings: the real one when it is
    configured, else the outbox if the config chooses it (`outbox.chosen`), else the real one
    still (its digests wait: `not_ready`)."""
    cls = channel_of(subscriber)
    if cls is None:
        return "outbox"
    from .outbox import chosen  # registered by `_load_builtin` below

    if cls.ready(subscriber, settings) or not chosen(settings):
        return cls.name
    return "outbox"


def not_ready(name: str, subscriber: Subscriber, settings: Settings) -> str:
    """Why channel `name` cannot send to this subscriber now, with the fix; empty when it can."""
    missing = CHANNELS[name].missing(subscriber, settings)
    if not missing:
        return ""
    return f"not sent: {missing}; {unready_fix(settings)}; the digest waits for the next run"


def unready_fix(settings: Settings) -> str:
    """The fix that follows a channel's `missing`: set it, or choose the outbox. `not_ready` at
    run time and `digestbot check` beforehand (`checks.channel_problems`) say the same."""
    config = settings.config_path or "digestbot.toml"
    return (
        f'set it, or write outbox_dir = "outbox" in {config} to have such digests written to '
        "files instead"
    )


def subscriber_fields() -> list[Field]:
    """Every subscription file key that names a destination, channel by channel."""
    return [f for cls in CHANNELS.values() for f in cls.fields]


def destination_problems(values: Mapping[str, str]) -> list[tuple[str, str]]:
    """(key, problem with its fix) for a subscription file's destination keys (the non-empty
    ones in `values`): each value as its channel's field says, and exactly one channel."""
    fields = subscriber_fields()
    found = [
        (f.name, why) for f in fields if values.get(f.name) and (why := f.problem(values[f.name]))
    ]
    served = [cls for cls in CHANNELS.values() if any(values.get(f.name) for f in cls.fields)]
    if not served and fields:
        examples = [f.example for f in fields]
        give = (
            ", ".join(examples[:-1]) + " or " + examples[-1] if len(examples) > 1 else examples[0]
        )
        found.append((fields[0].name, f"no delivery address; give {give}"))
    elif len(served) > 1:
        both = f"give either {served[0].destination} or {served[1].destination}, not both"
        found.append((served[0].fields[0].name, f"{both}; make one file per destination"))
    return found


def destination(values: Mapping[str, str]) -> dict[str, Any]:
    """`Subscriber` arguments for a file's destination keys: attributes, the rest in `contact`."""
    own = Subscriber.__dataclass_fields__
    kwargs: dict[str, Any] = {k: v for k, v in values.items() if k in own}
    kwargs["contact"] = {k: v for k, v in values.items() if k not in own}
    return kwargs


def rates(settings: Settings) -> dict[str, tuple[float, bool]]:
    """Messages per second per channel for the whole pool together, and whether per destination."""
    return {
        name: (cls.rate_limit.of(settings), cls.rate_limit.per_destination)
        for name, cls in CHANNELS.items()
        if cls.rate_limit.per_second or cls.rate_limit.setting
    }


def settings_tables() -> dict[str, dict[str, str]]:
    """Each channel's table in digestbot.toml: table → {key: Settings attribute}."""
    return {
        cls.settings_table: dict(cls.settings_keys)
        for cls in CHANNELS.values()
        if cls.settings_table
    }


def _load_builtin() -> None:
    from . import email, outbox, slack  # noqa: F401  (registration side effect)


_load_builtin()
