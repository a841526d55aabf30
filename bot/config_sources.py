"""The `[[sources]]` tables of `digestbot.toml`: each a `SourceSpec`, every problem named.

The source kinds are passed in (`bot.sources.SOURCES`), so configuration never imports a source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .errors import BotError, Problem

SOURCE_KEYS = {"name", "type", "interval_minutes"}  # besides the kind's own options


class SourceKind(Protocol):
    """What config checking needs of a source kind (a `bot.sources.Source` class): its options,
    and its constructor, which checks each option's type (`BotError` with the fix)."""

    @property
    def options(self) -> Mapping[str, Any]:
        """Option name → default; a default of None marks a required option."""

    def __call__(self, name: str, settings: Mapping[str, Any], http: Any) -> object:
        """A source of this kind (no network: `http` is only kept)."""


@dataclass(frozen=True, slots=True)
class SourceSpec:
    """One `[[sources]]` table: a name, a kind and that kind's options."""

    name: str
    type: str
    options: Mapping[str, Any] = field(default_factory=dict)
    interval_minutes: int = 30  # how often `digestbot run` fetches it


def check_type(
    problems: list[Problem],
    where: str,
    key: str,
    value: Any,
    kind: type | tuple[type, ...],
    hint: str,
) -> bool:
    """Whether `value` is of `kind`; a problem naming the key appended when not."""
    if isinstance(value, bool) or not isinstance(value, kind):
        problems.append(Problem(where, key, f"{value!r} is not {hint}; write {hint}"))
        return False
    return True


def parse_sources(
    sources: Any,
    where: str,
    interval: int,
    kinds: Mapping[str, SourceKind] | None,
    problems: list[Problem],
) -> tuple[SourceSpec, ...]:
    """The `[[sources]]` tables as specs; each problem appended to `problems` (see `parse_settings`)."""
    specs: list[SourceSpec] = []
    seen: set[str] = set()
    if not check_type(problems, where, "sources", sources, list, "a list of [[sources]] tables"):
        return ()
    for i, table in enumerate(sources):
        key = f"sources[{i}]"
        if not check_type(problems, where, key, table, dict, "a [[sources]] table"):
            continue
        name, kind = table.get("name"), table.get("type")
        if not isinstance(name, str) or not name:
            problems.append(Problem(where, f"{key}.name", "missing; give each source a name"))
            continue
        key = f"sources[{name}]"
        if name in seen:
            problems.append(
                Problem(where, f"{key}.name", "used twice; give each source its own name")
            )
        seen.add(name)
        options = {k: v for k, v in table.items() if k not in SOURCE_KEYS}
        if not _check_kind(problems, where, key, kind, options, kinds):
            continue
        every = table.get("interval_minutes", interval)
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            problems.append(
                Problem(
                    where,
                    f"{key}.interval_minutes",
                    f"{every!r} is not a whole number of minutes ≥ 1; write e.g. 30",
                )
            )
            every = interval
        specs.append(SourceSpec(name, kind, options, every))
    return tuple(specs)


def _check_kind(
    problems: list[Problem],
    where: str,
    key: str,
    kind: Any,
    options: Mapping[str, Any],
    kinds: Mapping[str, SourceKind] | None,
) -> bool:
    """Whether `kind` is a source type (any string when `kinds` is None); its options checked too."""
    if kinds is None:
        if isinstance(kind, str) and kind:
            return True
        problems.append(
            Problem(
                where,
                f"{key}.type",
                f'{kind!r} is not a source type; write type = "rss" or another',
            )
        )
        return False
    if kind not in kinds:
        problems.append(
            Problem(
                where,
                f"{key}.type",
                f"{kind!r} is not a source type; use one of {', '.join(sorted(kinds))}",
            )
        )
        return False
    known = kinds[kind].options
    for opt in sorted(set(options) - set(known)):
        allowed = ", ".join(sorted(set(known) | SOURCE_KEYS))
        problems.append(
            Problem(where, f"{key}.{opt}", f"unknown key for type {kind!r}; the keys are {allowed}")
        )
    missing = [opt for opt, default in known.items() if default is None and opt not in options]
    for opt in missing:
        problems.append(
            Problem(where, f"{key}.{opt}", f'missing; a {kind!r} source needs {opt} = "…"')
        )
    if not missing and set(options) <= set(known):
        name = key.removeprefix("sources[").removesuffix("]")
        try:
            kinds[kind](name, options, None)  # checks each option's type, with the fix
        except BotError as e:
            problems.append(Problem(where, key, str(e).removeprefix(f"source {name!r}: ")))
    return True
