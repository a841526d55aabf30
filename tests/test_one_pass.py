"""One plan pass for every due subscriber: the scheduler as `run --once`, the fitted model kept,
what a digest offers (`lookback_days`), and `preview` showing the slot `run --once` sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import time_machine
from _project import write_project

from bot.config import Settings, load_settings
from bot.delivery import FittedModel, next_digest, plan_digests, run_once
from bot.match import Matcher
from bot.models import DigestItem, Entry, Interests, Subscriber
from bot.scheduler import Runner
from bot.store import Store

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def reader(n: int, schedule: str = "0 8 * * *") -> Subscriber:
    return Subscriber(
        id=f"r{n}",
        email=f"r{n}@example.org",
        schedule=schedule,
        timezone="UTC",
        interests=Interests(keywords=("quantization",) if n % 2 else ("diffusion",)),
    )


def paper(n: int, topic: str = "quantization", **kw: object) -> Entry:
    return Entry(
        id=f"arxiv:2611.{n:05d}",
        title=f"{topic.title()} study {n}",
        summary=f"We study {topic} for large models, case {n}.",
        **kw,  # type: ignore[arg-type]
    )


@pytest.fixture
def world(tmp_path: Path) -> tuple[Settings, Store]:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", outbox_dir=tmp_path / "outbox"
    )
    store = Store(settings.database_url)
    store.upsert_entries(
        [paper(n, "quantization" if n % 2 else "diffusion", published=NOW) for n in range(12)],
        now=NOW,
    )
    yield settings, store
    store.close()


def test_the_fitted_model_is_reused_until_the_corpus_changes(world: tuple[Settings, Store]) -> None:
    settings, store = world
    subs = [reader(n) for n in range(6)]
    model = FittedModel()
    first = plan_digests(settings, store, subs, NOW, model=model).plans
    again = plan_digests(settings, store, subs, NOW + timedelta(minutes=5), model=model).plans
    assert model.fits == 1
    # the same plans as a matcher fitted afresh
    fresh = plan_digests(settings, store, subs, NOW, matcher=Matcher()).plans
    assert [(p.subscriber.id, p.slot, p.items) for p in first] == [
        (p.subscriber.id, p.slot, p.items) for p in fresh
    ]
    assert [p.items for p in again] == [p.items for p in first]
    # a fetch that stores something new: fitted again, and the new paper is offered
    later = NOW + timedelta(minutes=10)
    store.upsert_entries([paper(99, published=later)], now=later)
    plans = plan_digests(settings, store, subs, later, model=model).plans
    assert model.fits == 2
    assert "arxiv:2611.00099" in {i.entry.id for p in plans for i in p.items}
    # a fetch that only enriches an entry changes the corpus too
    enriched = later + timedelta(minutes=30)  # the next fetch
    store.upsert_entries([paper(99, published=later, extra={"upvotes": 5})], now=enriched)
    plan_digests(settings, store, subs, enriched, model=model)
    assert model.fits == 3
    plan_digests(settings, store, subs, enriched, model=model)
    assert model.fits == 3


def test_lookback_offers_what_was_published_in_the_window_not_an_old_archive_seen_today(
    world: tuple[Settings, Store],
) -> None:
    settings, store = world  # lookback_days = 7
    archive = [paper(500 + n, published=NOW - timedelta(days=90)) for n in range(5)]
    undated = Entry(
        id="https://blog.example.org/q", title="Quantization notes", summary="quantization"
    )
    store.upsert_entries([*archive, undated], now=NOW)  # a feed added today with its archive
    [plan] = plan_digests(settings, store, [reader(1)], NOW).plans
    offered = {i.entry.id for i in plan.items}
    assert not offered & {e.id for e in archive}
    assert "https://blog.example.org/q" in offered  # undated: counts from when it was first seen
    # an undated entry first seen long ago is not offered again
    store.upsert_entries(
        [Entry(id="https://blog.example.org/old", title="Quantization", summary="quantization")],
        now=NOW - timedelta(days=30),
    )
    [plan] = plan_digests(settings, store, [reader(1)], NOW).plans
    assert "https://blog.example.org/old" not in {i.entry.id for i in plan.items}


def test_preview_shows_the_digest_run_once_then_sends(world: tuple[Settings, Store]) -> None:
    settings, store = world
    sub = reader(1)  # 08:00 daily; at 10:00 today's digest is due and not sent yet
    preview = next_digest(settings, store, sub, NOW)
    assert preview.slot == datetime(2026, 11, 25, 8, tzinfo=UTC)
    report = run_once(settings, store, [sub], now=NOW)
    [sent] = report.outcomes
    assert sent.status == "sent" and sent.digest_id == preview.id
    assert [i.entry.id for i in store.digest_items(preview.id)] == [
        i.entry.id for i in preview.items
    ]
    # once it is sent, the preview shows tomorrow's
    assert next_digest(settings, store, sub, NOW).slot == datetime(2026, 11, 26, 8, tzinfo=UTC)


@pytest.mark.slow
def test_the_scheduler_sends_every_digest_due_in_a_minute_in_one_pass(tmp_path: Path) -> None:
    """100 subscribers due at 08:00: one plan pass serves them all, and the corpus is fitted once."""
    config = write_project(tmp_path, 100, schedule="0 8 * * *")
    settings = load_settings(str(config), environ={})
    start = datetime(2026, 11, 25, 7, 59, 56, tzinfo=UTC)
    with time_machine.travel(start, tick=True):
        runner = Runner(settings)
        try:
            runner.start()  # catch-up: yesterday's 08:00 digest for each, in one pass
            caught_up = runner.model.fits
            deadline = datetime.now(UTC) + timedelta(seconds=90)
            today = datetime(2026, 11, 25, 8, tzinfo=UTC)
            while datetime.now(UTC) < deadline:
                if runner.store.last_slots() == {f"s{n:04d}": today for n in range(100)} and (
                    len(runner.store.digests_with_status("pending")) == 0
                ):
                    break
                runner.stopping.wait(0.2)
            rows = runner.store.digests_with_status("sent", "empty", "pending", "failed")
        finally:
            runner.stop()
    assert caught_up == 1
    todays = [r for r in rows if r.slot == today]
    assert len(todays) == 100 and {r.status for r in todays} == {"sent"}
    assert runner.passes == [100], "every subscriber due at 08:00 was planned in one pass"
    assert runner.model.fits == 1, "the corpus did not change: the catch-up's fit was reused"


def test_match_json_is_written_one_subscriber_at_a_time(tmp_path: Path) -> None:
    """Each subscriber's object is encoded and written on its own line (no one huge string)."""
    import json

    from click.testing import CliRunner

    from bot.cli import cli

    subs = tmp_path / "subs"
    subs.mkdir()
    for n, word in enumerate(("quantization", "diffusion", "agents")):
        (subs / f"r{n}.toml").write_text(
            f'email = "r{n}@example.org"\n[interests]\nkeywords = ["{word}"]\n', encoding="utf-8"
        )
    feed = Path(__file__).resolve().parents[1] / "examples" / "papers.xml"
    out = CliRunner().invoke(
        cli, ["match", "--entries", str(feed), "--subscriptions", str(subs), "--json"]
    )
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0] == '{"subscribers": [' and lines[-1] == "]}"
    assert [json.loads(line.rstrip(","))["id"] for line in lines[1:-1]] == ["r0", "r1", "r2"]
    assert [s["id"] for s in json.loads(out.output)["subscribers"]] == ["r0", "r1", "r2"]


# --- the fast paths against straightforward references ---------------------------------------
def _varied() -> tuple[list[Entry], list[Subscriber]]:
    """Papers of every theme (two by a followed author) and subscribers of every kind: described,
    keywords only (their topics' vocabulary joins), topics followed, a negation, an exclusion."""
    import random

    from match_corpus import corpus, paper, subscriber

    rng = random.Random(5)
    entries = corpus(per_theme=10) + [
        paper("quant", 90 + n, rng, ("Ada Lovelace",)) for n in (1, 2)
    ]
    subs = [
        subscriber("d", description="Post-training quantization of LLMs, low-bit weights"),
        subscriber("k", keywords=["speech", "ASR", "voice"]),
        subscriber("kk", keywords=["diffusion", "quantization", "speech recognition"]),
        subscriber("t", topics=["quantization", "speech"], keywords=["vocoder"]),
        subscriber("n", description="Image generation (not video), latent diffusion"),
        subscriber("x", keywords=["quantization"], exclude=["vision"], authors=["Ada Lovelace"]),
        subscriber("few", max_items=2, keywords=["latency", "dialogue"]),
    ]
    return entries, subs


def test_reasons_for_all_pairs_at_once_are_the_one_pair_reasons() -> None:
    """`Explainer` (array passes over all selected pairs) gives exactly what `reasons` gives
    pair by pair: keywords, topic, terms (ties in term order), followed author, liked paper."""
    import numpy as np

    from bot.match.explain import Explainer, reasons

    entries, subs = _varied()
    liked = {"k": [(e, 1) for e in entries if e.id.startswith("test:speech-")][:2]}
    m = Matcher().fit(entries)
    batch, prof, fb = m._prepare(entries, subs, liked)
    pairs = [(r, e) for r in range(len(subs)) for e in range(len(entries))]  # every pair
    rows, ents = (np.array(x) for x in zip(*pairs, strict=True))
    forced = (prof.follows @ batch.authors_t).toarray()[rows, ents] > 0
    fast = Explainer(batch, prof, m.index, fb, m.space)(rows, ents, forced)
    slow = [
        reasons(batch, prof, m.index, fb, m.space, m.space.terms, r, e, bool(f))
        for (r, e), f in zip(pairs, forced, strict=True)
    ]
    assert fast == slow
    kinds = {w.split(":")[0].split(" “")[0] for why in fast for w in why}
    assert {"keyword", "topic", "terms", "like", "by an author you follow"} <= kinds, kinds


def test_match_ranks_and_selects_as_a_plain_sort_of_the_scores() -> None:
    """Each subscriber's list is its chunk's scores sorted by (followed author first, score,
    entry order), `selected` exactly the chosen ones; the selected-only lists are those
    filtered; any chunk size gives the same."""
    entries, subs = _varied()
    m = Matcher(chunk_size=3).fit(entries)
    every = m.match(entries, subs)
    chosen = m.match(entries, subs, unselected=False)
    batch, prof, fb = m._prepare(entries, subs, None)
    for lo, hi, scores, picked, forced in m._chunks(batch, prof, fb, None):
        for c in range(hi - lo):
            sid = subs[lo + c].id
            order = sorted(range(len(entries)), key=lambda j: (not forced[c, j], -scores[c, j], j))
            assert [x.entry_id for x in every[sid]] == [entries[j].id for j in order]
            assert [x.selected for x in every[sid]] == [bool(picked[c, j]) for j in order]
            assert chosen[sid] == [x for x in every[sid] if x.selected]
    assert Matcher(chunk_size=4096).fit(entries).match(entries, subs) == every
    assert any(chosen.values())


def test_the_counted_fit_is_scikit_learns_fit() -> None:
    """The tf-idf space fitted by counting (numpy over the word table) has the vocabulary,
    columns, idf and vectors of `TfidfVectorizer.fit` with the same analyzer."""

    from bot.match.features import entry_text

    entries, _ = _varied()
    texts = [entry_text(e) for e in entries] + [
        "Ünïcode naïve façade — LoRA-based MixLoRA, 4-bit\u00a0weights",
        "nul\x00inside, CamelCaseWords and ViT-B/16; the of and",
    ]
    _counted_as_fitted(texts)


def _counted_as_fitted(texts: list[str]) -> None:
    """The counted fit of `texts` against `TfidfVectorizer.fit`: vocabulary, columns, idf,
    vectors, surface forms, each term's column looked up, and the columns in text order."""
    from collections import Counter

    import numpy as np

    from bot.match.features import TextSpace, stem, words

    counted = TextSpace().fit(texts)
    fitted = TextSpace()
    fitted._fit_counts = lambda texts: False  # type: ignore[method-assign]
    fitted.fit(texts)
    assert counted._counted and not fitted._counted
    terms = list(counted.terms)
    assert terms == sorted(terms) == list(fitted.terms) and len(set(terms)) == len(terms)
    assert [counted.column(t) for t in terms] == list(range(len(terms)))
    assert counted.column("no such term") is None and counted.column("") is None
    assert counted.vocabulary == fitted.vectorizer.vocabulary_
    assert counted.vectorizer.vocabulary_ == fitted.vectorizer.vocabulary_
    assert counted.idf.dtype == np.float32 and np.array_equal(counted.idf, fitted.idf)
    # the surface forms: each stem's most common word, the first seen among equals
    best: dict[str, tuple[str, int]] = {}
    for w, n in Counter(words(" ".join(texts[:5000]))).items():
        if n > best.get(stem(w), ("", 0))[1]:
            best[stem(w)] = (w, n)
    assert counted.surface == fitted.surface == {s: w for s, (w, _) in best.items()}
    mine, theirs = counted.transform(texts).toarray(), fitted.vectorizer.transform(texts).toarray()
    assert np.allclose(mine, theirs, atol=1e-6) and np.array_equal(mine > 0, theirs > 0)


def test_the_counted_columns_are_in_text_order_for_stems_that_prefix_each_other() -> None:
    """Columns are ordered by stem ranks, not by sorting the terms' text: the same order when
    stems are prefixes of each other ("ab", "abc", "ab c", "ab0") or digits come in."""
    import random

    rng = random.Random(14)
    alphabet = ["ab", "abc", "abcd", "ab0", "ab1", "b", "bc", "c", "c0", "zz", "z9", "9z", "q"]
    texts = [" ".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(60)]
    _counted_as_fitted(texts + ["ab abc ab abcd", "abc ab", "ab c ab0 ab ab1"])


def test_the_counted_fit_on_the_real_archive() -> None:
    """The 1,504 real papers (with the taxonomy's texts, as `Matcher.fit` fits them)."""
    import json

    from conftest import SHARED_FIXTURES

    from bot.match.features import entry_text
    from bot.match.topics import load_topics

    archive = SHARED_FIXTURES / "hf" / "hf_daily_papers_archive_2025-12_2026-08_1504papers.json"
    if not archive.exists():
        pytest.skip(f"{archive} is absent (the shared fixtures are not checked out)")
    papers = [p["paper"] for p in json.loads(archive.read_text())]
    entries = [Entry(id=p["id"], title=p["title"], summary=p["summary"]) for p in papers]
    _counted_as_fitted([entry_text(e) for e in entries] + [t.text for t in load_topics(None)])


def test_gc_is_paused_inside_and_back_after_even_on_error() -> None:
    import gc

    from bot.gcpause import gc_paused

    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the outer pause still holds
        raise RuntimeError
    assert gc.isenabled()


def _incidence_one_text_at_a_time(texts: list[str], phrases: list[str]) -> set[tuple[int, int]]:
    """The reference: each text's tokens, each phrase looked up at each position."""
    from bot.match.features import tokens

    found = set()
    for r, text in enumerate(texts):
        toks = tokens(text)
        for c, p in enumerate(phrases):
            n = len(p.split(" "))
            if p and any(" ".join(toks[i : i + n]) == p for i in range(len(toks))):
                found.add((r, c))
    return found


def test_phrase_incidence_is_each_phrase_looked_up_in_each_text() -> None:
    """Phrases of one to four tokens (stop words and numbers too), repeated, empty, longer than
    a text, or only found across two texts' boundary: the array passes find exactly what a
    lookup at every position finds."""
    import random

    from bot.match.features import phrase_incidence, phrase_key, tokens

    entries, _ = _varied()
    texts = [f"{e.title}. {e.summary}" for e in entries[:12]] + ["", "state of the art", "4 bit"]
    rng = random.Random(9)
    pool = [t for text in texts for t in tokens(text)]
    phrases = [phrase_key("state of the art"), phrase_key("4-bit"), "", "art quantization"]
    for _ in range(300):
        i = rng.randrange(len(pool) - 4)
        phrases.append(" ".join(pool[i : i + rng.randint(1, 4)]))
    phrases += phrases[:20]  # repeated
    got = phrase_incidence(texts, phrases).tocoo()
    assert set(got.data.tolist()) <= {0.0, 1.0}
    got.eliminate_zeros()  # an empty phrase's column is zeroed
    assert set(zip(got.row.tolist(), got.col.tolist(), strict=True)) == (
        _incidence_one_text_at_a_time(texts, phrases)
    )
    assert got.nnz > 300


def test_delivered_and_votes_of_many_subscribers_in_one_lookup(backend_url: str) -> None:
    """PostgreSQL reads them with one `= ANY(array)`, SQLite in `IN` lists of 500: the same rows."""
    store = Store(backend_url)
    try:
        store.upsert_entries([paper(n, published=NOW) for n in range(4)], now=NOW)
        subscribers = [f"s{n}" for n in range(1300)]
        picked = {"s3": (0, 1), "s650": (2,), "s1299": (1, 3)}
        for sid, ns in picked.items():
            items = [DigestItem(paper(n), 0.5) for n in ns]
            assert store.claim(sid, NOW, items, "email", now=NOW) is not None
        for at, (sid, n, vote) in enumerate([("s650", 2, 1), ("s1299", 3, -1), ("s1299", 1, 1)]):
            store.record_feedback(sid, paper(n).id, vote, NOW + timedelta(minutes=at))
        got = store.delivered(subscribers)
        assert set(got) == set(subscribers)
        assert {s: v for s, v in got.items() if v} == {
            s: {paper(n).id for n in ns} for s, ns in picked.items()
        }
        votes = store.feedback_for(subscribers)
        assert {s: [(e.id, v) for e, v in got] for s, got in votes.items()} == {
            "s650": [(paper(2).id, 1)],
            "s1299": [(paper(3).id, -1), (paper(1).id, 1)],  # in the order cast
        }
        assert store.delivered([]) == {} and store.feedback_for([]) == {}
    finally:
        store.close()


def test_unit_rows_are_scikit_learns_normalize_bit_for_bit() -> None:
    """`l2_rows` (sparse) and `_unit_rows` (dense) replace `sklearn.preprocessing.normalize`."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn.preprocessing import normalize

    from bot.match.features import TextSpace, entry_text, l2_rows
    from bot.match.profiles import _unit_rows

    entries, _ = _varied()
    texts = [entry_text(e) for e in entries]
    space = TextSpace().fit(texts)
    rng = np.random.default_rng(7)
    raw = sp.random(300, 500, density=0.05, random_state=rng, dtype=np.float32, format="csr")
    raw.data *= rng.uniform(0.01, 30, raw.nnz).astype(np.float32)
    keep = np.ones(300, np.float32)
    keep[5] = 0.0
    raw = sp.csr_matrix(sp.diags(keep) @ raw)  # an empty row stays empty
    counted = space.transform(texts + ["", "the of and"])  # as transform builds its rows
    for m in (raw, counted):
        mine, theirs = l2_rows(m), sp.csr_matrix(normalize(m), dtype=np.float32)
        assert np.array_equal(mine.indptr, theirs.indptr)
        assert np.array_equal(mine.indices, theirs.indices)
        assert mine.data.dtype == np.float32
        assert np.array_equal(mine.data.view(np.int32), theirs.data.view(np.int32))
    dense = rng.uniform(-1, 3, (200, 40))
    dense[3] = 0
    assert np.array_equal(_unit_rows(dense), normalize(dense))


def test_matching_does_not_import_scikit_learn() -> None:
    """Its stop words are scikit-learn's, written out; planning a pass never imports it (0.7 s)."""
    import subprocess
    import sys

    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from bot.match.words import _ENGLISH_STOP_WORDS

    assert _ENGLISH_STOP_WORDS == ENGLISH_STOP_WORDS
    code = (
        "import sys; import bot.delivery, bot.match, bot.cli; "
        "from bot.match import Matcher; "
        "print(sorted(m for m in sys.modules if m.startswith(('sklearn', 'scipy.stats'))))"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
    )
    assert out.stdout.strip() == "[]"
