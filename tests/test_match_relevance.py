"""Relevance that holds up: selection does not swing with what the store holds, quiet days send
nothing, votes recorded through the store help, and the shared evaluation sets stay above the
plain tf-idf floor (the last three need ../shared and are skipped without it)."""

from __future__ import annotations

import math
import random
import sys
from collections import defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path

import pytest
from match_corpus import corpus, paper

from bot.match import Matcher
from bot.models import Entry, Interests, Subscriber
from bot.sources.files import read_entries
from bot.subscriptions import load_subscriptions

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ARCHIVE = SHARED / "fixtures" / "hf" / "hf_daily_papers_archive_2025-12_2026-08_1504papers.json"
WEEKS = SHARED / "eval" / "hf-weeks"


def chosen(
    matcher: Matcher, day: Sequence[Entry], subs: Sequence[Subscriber]
) -> dict[str, set[str]]:
    result = matcher.match(day, subs, unselected=False)
    return {s.id: {m.entry_id for m in result[s.id]} for s in subs}


def test_the_example_day_selects_the_same_with_a_month_in_the_store_and_a_quiet_day_nothing() -> (
    None
):
    day, _ = read_entries(ROOT / "examples" / "papers.xml")
    subs, problems = load_subscriptions(ROOT / "subscriptions")
    assert subs and not problems
    month = corpus(per_theme=30, seed=5)  # 150 other papers in the store
    alone = chosen(Matcher().fit(day), day, subs)
    busy = chosen(Matcher().fit(day + month), day, subs)
    for s in subs:
        assert alone[s.id], s.id  # the example feed has something for everyone
        assert len(alone[s.id] ^ busy[s.id]) <= 1, (s.id, alone[s.id], busy[s.id])
    rng = random.Random(9)
    quiet = [paper(t, 900 + i, rng) for i in range(5) for t in ("graph", "rl")]
    for store in (quiet, quiet + month):
        assert chosen(Matcher().fit(store), quiet, subs) == {s.id: set() for s in subs}


def test_a_broad_keyword_list_on_the_small_example_feed_sends_its_subjects() -> None:
    """Three subjects as keywords: each one's papers are sent, the unrelated ones are not,
    and a quiet day still sends nothing (the taxonomy's topics the keywords fall in are the
    subscriber's subject, not the background it must stand out of)."""
    day, _ = read_entries(ROOT / "examples" / "papers.xml")
    broad = Subscriber(
        id="broad",
        email="broad@example.org",
        max_items=10,
        interests=Interests(keywords=("diffusion", "quantization", "language model")),
    )
    titles = {e.id: e.title.lower() for e in day}
    sent = chosen(Matcher().fit(day), day, [broad])["broad"]
    about = {w: {i for i in sent if w in titles[i]} for w in ("diffusion", "quantiz")}
    assert len(about["diffusion"]) >= 2 and len(about["quantiz"]) >= 2, sorted(
        map(titles.get, sent)
    )
    # nothing on graphs, retrieval, reward models or robots
    off = ("graph", "retrieval", "reward", "robot")
    assert not [titles[i] for i in sent if any(w in titles[i] for w in off)]
    rng = random.Random(9)
    quiet = [paper(t, 900 + i, rng) for i in range(5) for t in ("graph", "rl")]
    assert not chosen(Matcher().fit(quiet), quiet, [broad])["broad"]


def _shared(path: Path) -> None:
    if not path.exists():
        pytest.skip(
            f"the shared evaluation data is not at {path} (it sits next to the project checkout)"
        )


def _weeks() -> tuple[list[Entry], list[Subscriber], dict[str, dict[str, float]]]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import relevance

    [s] = [s for s in relevance.load_sets(WEEKS.parent) if s.name == "hf-weeks"]
    return s.entries, s.subscribers[False], s.gold


@pytest.mark.slow
def test_hf_days_select_the_same_papers_whether_the_store_holds_one_day_or_a_month() -> None:
    _shared(ARCHIVE)
    _shared(WEEKS)
    entries, subs, gold = _weeks()
    archive, _ = read_entries(ARCHIVE)
    days: dict[date, list[Entry]] = defaultdict(list)
    for e in entries:
        assert e.published is not None
        days[e.published.date()].append(e)
    cases = swings = quiet = loud = 0
    for d, todays in sorted(days.items()):
        if len(todays) < 5:
            continue
        ids = {e.id for e in todays}
        month = [
            e
            for e in archive
            if e.id not in ids and e.published and d - timedelta(days=30) <= e.published.date() < d
        ]
        assert len(month) > 100
        alone = chosen(Matcher().fit(todays), todays, subs)
        busy = chosen(Matcher().fit(todays + month), todays, subs)
        for s in subs:
            cases += 1
            swings += len(alone[s.id] ^ busy[s.id]) > 1
            if not any(gold[s.id].get(e, 0) >= 1 for e in ids):
                quiet += 1
                loud += bool(alone[s.id] or busy[s.id])
    # Measured: 222 of 224 within ±1 and 2 of 145 quiet subscriber-days sending a (wrong) paper.
    assert cases > 200 and swings <= 0.02 * cases, (
        f"{swings} of {cases} subscriber-days changed by more than one paper"
    )
    # A quiet day (nothing relevant) sends nothing; a rare false positive is a ranking error.
    assert quiet > 100 and loud <= 0.05 * quiet, (
        f"{loud} of {quiet} quiet subscriber-days sent something"
    )


@pytest.mark.slow
def test_votes_recorded_through_the_store_raise_the_next_weeks_ranking(tmp_path: Path) -> None:
    _shared(WEEKS)
    _weeks()  # puts benchmarks/ on the path
    import relevance

    [s] = [s for s in relevance.load_sets(WEEKS.parent) if s.name == "hf-weeks"]
    votes, last = relevance.recorded_votes(s, f"sqlite:///{tmp_path}/votes.db")
    assert sum(len(v) for v in votes.values()) > 8 * 100
    rows = relevance.feedback_rows(s, votes, last)
    changes = [after - before for _, before, after in rows]
    # Measured: +0.016 on average (optim +0.099, interp +0.034); the worst, audio, -0.007. The bar: it rises on average and drops by more than 0.02 for nobody.
    assert sum(changes) / len(changes) > 0.01, rows
    assert min(changes) >= -0.02, rows


@pytest.mark.slow
@pytest.mark.parametrize(
    ("name", "keywords_only", "ndcg", "ap"),
    [
        ("seed day", False, 0.862, 0.816),
        ("hf-weeks", False, 0.924, 0.824),
        ("seed day", True, 0.786, 0.739),
        ("hf-weeks", True, 0.856, 0.740),
    ],
)
def test_each_set_stays_above_the_plain_tfidf_cosine(
    name: str, keywords_only: bool, ndcg: float, ap: float
) -> None:
    _shared(WEEKS)
    _weeks()  # puts benchmarks/ on the path
    import relevance

    [s] = [s for s in relevance.load_sets(WEEKS.parent) if s.name == name]
    plain = relevance.mean(relevance.baseline_rows(s, keywords_only))
    assert math.isclose(plain[0], ndcg, abs_tol=0.0015) and math.isclose(
        plain[1], ap, abs_tol=0.0015
    ), plain
    ours = relevance.mean(relevance.digestbot_rows(s, keywords_only))
    assert ours[0] >= ndcg and ours[1] >= ap, (ours, plain)
