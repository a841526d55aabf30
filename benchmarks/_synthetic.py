"""Synthetic entries and subscribers for the benchmarks (seeded, so runs compare), and writers
that put them where digestbot reads them: subscriber files, an HF daily-papers JSON file, the store.

Entries are abstracts on 300 latent themes with Zipf-distributed background words; subscribers
describe a theme in a sentence, name 1–3 of its keywords, and some follow a topic, an author or
exclude a word.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bot.match.topics import load_topics
from bot.models import Entry, Interests, Subscriber

SYLLABLES = [c + v for c in "bcdfghklmnprstvz" for v in "aeiou"]


def vocabulary(rng: random.Random, n: int) -> list[str]:
    """`n` distinct made-up words of 2–4 syllables."""
    words: set[str] = set()
    while len(words) < n:
        words.add("".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def generate(n_entries: int, n_subs: int, seed: int = 7) -> tuple[list[Entry], list[Subscriber]]:
    """Synthetic entries and subscribers (see the module docstring)."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    words = vocabulary(rng, 20_000)
    background = words[:15_000]
    zipf = 1.0 / np.arange(1, len(background) + 1) ** 1.05
    zipf /= zipf.sum()
    themes = [words[15_000 + 16 * t : 15_000 + 16 * (t + 1)] for t in range(300)]
    authors = [f"{rng.choice(words).title()} {rng.choice(words).title()}" for _ in range(3000)]
    slugs = [t.slug for t in load_topics()]
    entries = []
    for i in range(n_entries):
        theme = themes[i % len(themes)]
        bg = nrng.choice(len(background), size=140, p=zipf)
        body = [background[j] for j in bg] + [rng.choice(theme) for _ in range(35)]
        rng.shuffle(body)
        title = " ".join(rng.sample(theme, 3) + [background[j] for j in bg[:4]]).capitalize()
        entries.append(
            Entry(
                id=f"arxiv:2611.{i:05d}",
                title=title,
                summary=" ".join(body) + ".",
                authors=tuple(rng.sample(authors, 3)),
            )
        )
    subs = []
    for s in range(n_subs):
        theme = themes[rng.randrange(len(themes))]
        desc = " ".join(rng.sample(theme, 8) + [background[j] for j in nrng.choice(2000, size=6)])
        keywords = tuple(rng.sample(theme, rng.randint(1, 3)))
        if rng.random() < 0.3:
            keywords += (" ".join(rng.sample(theme, 2)),)
        interests = Interests(
            description=desc if rng.random() < 0.8 else "",
            keywords=keywords,
            exclude=(rng.choice(background[:5000]),) if rng.random() < 0.05 else (),
            topics=(rng.choice(slugs),) if rng.random() < 0.2 else (),
            authors=(rng.choice(authors),) if rng.random() < 0.02 else (),
        )
        subs.append(
            Subscriber(
                id=f"s{s:06d}",
                email=f"s{s}@example.org",
                schedule="* * * * *",
                max_items=rng.choice([5, 10, 20]),
                interests=interests,
            )
        )
    return entries, subs


def _toml_list(values: tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def write_subscriber_files(subs: list[Subscriber], folder: Path) -> None:
    """One `<id>.toml` per subscriber, as a user writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    for s in subs:
        i = s.interests
        lines = [
            f"email = {json.dumps(s.email)}",
            f"schedule = {json.dumps(s.schedule)}",
            f"max_items = {s.max_items}",
            "",
            "[interests]",
            f"description = {json.dumps(i.description)}",
            f"keywords = {_toml_list(i.keywords)}",
        ]
        for key in ("exclude", "topics", "authors"):
            if getattr(i, key):
                lines.append(f"{key} = {_toml_list(getattr(i, key))}")
        (folder / f"{s.id}.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_daily_papers(entries: list[Entry], path: Path, when: datetime | None = None) -> None:
    """The entries as a Hugging Face daily-papers JSON file (what `match --entries` reads)."""
    stamp = (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    items = [
        {
            "paper": {
                "id": e.id.removeprefix("arxiv:"),
                "title": e.title,
                "summary": e.summary,
                "authors": [{"name": a} for a in e.authors],
                "publishedAt": stamp,
            },
            "title": e.title,
            "publishedAt": stamp,
        }
        for e in entries
    ]
    path.write_text(json.dumps(items), encoding="utf-8")
