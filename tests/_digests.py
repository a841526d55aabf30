"""Small digests for render and channel tests, built in code (no shared fixtures needed)."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.models import Digest, DigestItem, Entry, Subscriber

SLOT = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
NASTY = [
    "<script>alert('x')</script> Attention & Friends",
    "Fast & <b>Bold</b> Quantization",
    "Tom & Jerry <i>Nets</i>",
]


def entry(i: int, title: str | None = None, summary: str | None = None) -> Entry:
    """A plausible paper."""
    return Entry(
        id=f"arxiv:2603.{i:05d}",
        title=title or f"Low-bit quantization of vision transformers, part {i}",
        summary=summary
        if summary is not None
        else (
            "We study post-training quantization for large language models and vision transformers. "
            "Our method keeps accuracy within one point at four bits and runs twice as fast on commodity GPUs. "
            "We release code and models."
        ),
        url=f"https://arxiv.org/abs/2603.{i:05d}",
        authors=("Zoë Müller", "Song Han", "Ana Pérez"),
        published=SLOT,
        source="hf_daily",
        tags=("cs.LG",),
    )


def subscriber(**kw: object) -> Subscriber:
    """Alice, by email unless told otherwise."""
    base: dict[str, object] = {
        "id": "alice",
        "name": "Zoë Ålice Exämple",
        "email": "alice@example.org",
        "timezone": "Europe/Berlin",
    }
    base.update(kw)
    return Subscriber(**base)  # type: ignore[arg-type]


def digest(
    n: int = 3,
    sub: Subscriber | None = None,
    titles: list[str] | None = None,
    more: int = 0,
    did: str = "alice.20260302T0700Z",
) -> Digest:
    """A digest of `n` items (titles from `titles` first)."""
    titles = titles or []
    items = tuple(
        DigestItem(
            entry(i, titles[i] if i < len(titles) else None),
            0.9 - i / 1000,
            ("keyword: quantization", "terms: low-bit, vision"),
            "efficient-inference" if i % 3 else "vision",
        )
        for i in range(n)
    )
    return Digest(did, sub or subscriber(), SLOT, items, more)
