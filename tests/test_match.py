"""The matcher: selection, exclusions, followed authors, delivered entries, reasons, topics, chunking."""

from __future__ import annotations

import random

import numpy as np
import pytest
from match_corpus import corpus, paper, subscriber

from bot.match import Matcher, known_topics
from bot.models import Entry


@pytest.fixture(scope="module")
def entries() -> list[Entry]:
    return corpus()


def selected(result: dict, sid: str) -> list[str]:
    return [m.entry_id for m in result[sid] if m.selected]


def test_ranks_the_subscribers_theme_first_and_selects_only_it(entries: list[Entry]) -> None:
    subs = [
        subscriber(
            "q",
            description="Post-training quantization of LLMs, low-bit weights",
            keywords=["quantization"],
        ),
        subscriber("s", keywords=["speech", "ASR"]),
    ]
    result = Matcher().fit(entries).match(entries, subs)
    for sid, theme in (("q", "quant"), ("s", "speech")):
        ranked = [m.entry_id for m in result[sid]]
        assert len(ranked) == len(entries)
        assert all(e.startswith(f"test:{theme}-") for e in ranked[:8]), ranked[:8]
        chosen = selected(result, sid)
        assert chosen and all(e.startswith(f"test:{theme}-") for e in chosen)


def test_exclude_always_wins_even_over_a_followed_author_and_keywords(entries: list[Entry]) -> None:
    rng = random.Random(3)
    star = paper("quant", 99, rng, authors=("Song Han",))
    medical = Entry(
        id="test:medical",
        title="Quantization of medical imaging models",
        summary="Post-training quantization to 4-bit for medical image segmentation.",
        authors=("Song Han",),
    )
    pool = entries + [star, medical]
    sub = subscriber("q", keywords=["quantization"], exclude=["medical"], authors=["Song Han"])
    result = Matcher().fit(pool).match(pool, [sub])
    by_id = {m.entry_id: m for m in result["q"]}
    assert by_id["test:medical"].selected is False
    assert by_id[star.id].selected is True


def test_a_followed_author_always_gets_in_with_the_reason(entries: list[Entry]) -> None:
    rng = random.Random(4)
    off_topic = paper("graph", 77, rng, authors=("Ada  Lovelace",))
    pool = entries + [off_topic]
    sub = subscriber("q", max_items=3, keywords=["quantization"], authors=["ada lovelace"])
    result = Matcher().fit(pool).match(pool, [sub])
    first = result["q"][0]
    assert first.entry_id == off_topic.id and first.selected
    assert first.why[0] == "by an author you follow"
    assert len(selected(result, "q")) <= 3


def test_a_followed_author_is_found_however_the_feed_encodes_the_accents(
    entries: list[Entry],
) -> None:
    """ "José García" written with combining accents (NFD, as some feeds do) and upper case
    is the author a subscriber wrote in NFC: followed authors are always selected."""
    import unicodedata

    rng = random.Random(5)
    nfd = unicodedata.normalize("NFD", "JOSÉ GARCÍA")
    assert nfd != "JOSÉ GARCÍA"
    off_topic = paper("graph", 78, rng, authors=(nfd,))
    pool = entries + [off_topic]
    sub = subscriber("q", keywords=["quantization"], authors=["José García"])
    first = Matcher().fit(pool).match(pool, [sub])["q"][0]
    assert first.entry_id == off_topic.id and first.selected
    assert first.why[0] == "by an author you follow"


def test_delivered_entries_are_never_selected_again(entries: list[Entry]) -> None:
    sub = subscriber("q", keywords=["quantization"])
    m = Matcher().fit(entries)
    before = selected(m.match(entries, [sub]), "q")
    after = selected(m.match(entries, [sub], delivered={"q": set(before[:2])}), "q")
    assert before[:2] and not set(before[:2]) & set(after)
    assert set(before[2:]) <= set(after)


def test_a_quiet_day_selects_nothing_and_a_rich_day_more_up_to_max_items(
    entries: list[Entry],
) -> None:
    sub = subscriber(
        "q",
        max_items=5,
        description="low-bit quantization of weights and activations",
        keywords=["quantization"],
    )
    m = Matcher().fit(entries)
    quiet = [e for e in entries if not e.id.startswith("test:quant-")]
    assert selected(m.match(quiet, [sub]), "q") == []
    rng = random.Random(5)
    rich = entries + [paper("quant", 100 + i, rng) for i in range(10)]
    m = Matcher().fit(rich)
    few = selected(m.match(entries[:12], [sub]), "q")
    many = selected(m.match(rich, [sub]), "q")
    assert 1 <= len(few) < len(many) == 5


def test_reasons_name_keywords_topic_and_terms(entries: list[Entry]) -> None:
    sub = subscriber("s", keywords=["speech"])
    result = Matcher().fit(entries).match(entries, [sub])
    top = result["s"][0]
    assert top.selected and "keyword: speech" in top.why
    assert "topic: Speech and audio" in top.why
    assert any(w.startswith("terms: ") for w in top.why)
    assert top.topic == "Speech and audio"
    assert all(m.why == () for m in result["s"] if not m.selected)


def test_keywords_match_on_word_boundaries_with_light_morphology() -> None:
    pool = [
        Entry(
            id="a", title="Quantized LoRA-based adapters", summary="We study quantized adapters."
        ),
        Entry(id="b", title="A Moebius strip", summary="Topology of laser-cut paper."),
        Entry(id="c", title="Graph networks", summary="Message passing on graphs."),
    ]
    subs = [
        subscriber("k", keywords=["quantization", "LoRA"]),
        subscriber("w", keywords=["MoE", "ASR"]),
    ]
    result = Matcher().fit(pool).match(pool, subs)
    why = {m.entry_id: m.why for m in result["k"]}
    assert "keyword: quantization" in why["a"] and "keyword: LoRA" in why["a"]
    assert not any(w.startswith("keyword:") for m in result["w"] for w in m.why)
    assert selected(result, "w") == []


def test_a_keyword_only_profile_gains_its_topics_vocabulary(entries: list[Entry]) -> None:
    # No entry says "speech" here, but ASR, vocoders and spoken dialogue are the topic's vocabulary.
    pool = [e for e in entries if not e.id.startswith("test:speech-")] + [
        Entry(
            id="asr",
            title="Conformer transducers for streaming ASR",
            summary="A CTC and transducer model for automatic recognition of spoken audio.",
        ),
        Entry(
            id="tts",
            title="A neural vocoder",
            summary="Natural voice synthesis with a vocoder and prosody control.",
        ),
    ]
    result = Matcher().fit(pool).match(pool, [subscriber("s", keywords=["speech"])])
    assert {m.entry_id for m in result["s"][:2]} == {"asr", "tts"}


def test_a_keyword_list_the_taxonomy_barely_covers_keeps_to_its_own_words() -> None:
    # Only "web agent" is in the taxonomy (the agents topic); "deep research" and "search agent"
    # are not. The topic's vocabulary (tool calling, planning, GUI agents) must not send
    # generic agent papers to someone who asked for deep-research search agents.
    pool = corpus(per_theme=6, seed=4) + [
        Entry(
            id="dr1",
            title="Deep research with search agents",
            summary="A deep research system whose search agent reads documents and writes long "
            "reports with citations.",
        ),
        Entry(
            id="dr2",
            title="Training search agents for deep research",
            summary="Reinforcement learning teaches a search agent when to issue queries for "
            "deep research questions.",
        ),
        Entry(
            id="g1",
            title="Tool calling and planning for GUI agents",
            summary="An agentic framework with tool use, function calling and planning for "
            "computer use.",
        ),
        Entry(
            id="g2",
            title="Multi-agent orchestration workflows",
            summary="Agents plan, call tools and coordinate in a multi-agent workflow environment.",
        ),
    ]
    sub = subscriber("r", keywords=["deep research", "search agent", "web agent"])
    result = Matcher().fit(pool).match(pool, [sub])
    assert [m.entry_id for m in result["r"][:2]] in (["dr1", "dr2"], ["dr2", "dr1"])
    assert selected(result, "r") == ["dr1", "dr2"]


def test_following_a_topic_alone_is_enough(entries: list[Entry]) -> None:
    assert "reinforcement-learning" in known_topics()
    result = (
        Matcher().fit(entries).match(entries, [subscriber("t", topics=["reinforcement-learning"])])
    )
    chosen = selected(result, "t")
    assert chosen and all(e.startswith("test:rl-") for e in chosen)


def test_results_do_not_depend_on_the_chunk_size(entries: list[Entry]) -> None:
    subs = [
        subscriber(f"s{i}", keywords=[kw])
        for i, kw in enumerate(["quantization", "speech", "diffusion", "graph", "policy"])
    ]
    subs.append(subscriber("x", authors=["Nobody"]))  # nothing to match on but an author
    a = Matcher().fit(entries).match(entries, subs)
    b = Matcher(chunk_size=2).fit(entries).match(entries, subs)
    assert a == b
    assert selected(a, "x") == []


def test_only_selected_when_asked(entries: list[Entry]) -> None:
    sub = subscriber("q", keywords=["quantization"])
    m = Matcher().fit(entries)
    full, short = m.match(entries, [sub]), m.match(entries, [sub], unselected=False)
    assert short["q"] == [x for x in full["q"] if x.selected]
    sel = m.select(entries, [sub])
    assert sorted(entries[i].id for i in sel.entries) == sorted(x.entry_id for x in short["q"])


def test_no_entries_or_no_subscribers() -> None:
    assert Matcher().match([], [subscriber("q", keywords=["x"])]) == {"q": []}
    assert Matcher().match(corpus(1), []) == {}


def test_a_feed_that_is_all_on_the_subject_still_sends_its_matches() -> None:
    # A narrow feed (or a first run with a handful of entries): every entry is about the
    # subscriber's subject, so none stands out from the others — yet all are worth sending.
    rng = random.Random(7)
    narrow = [paper("quant", i, rng) for i in range(6)]
    sub = subscriber("q", max_items=10, keywords=["quantization"])
    assert len(selected(Matcher().fit(narrow).match(narrow, [sub]), "q")) == 6
    off_topic = [paper("speech", i, rng) for i in range(6)]
    assert selected(Matcher().fit(off_topic).match(off_topic, [sub]), "q") == []


def test_the_ize_family_meets_itself_and_not_its_root() -> None:
    from bot.match.features import stem

    assert stem("tokenization") == stem("tokenizer") == stem("tokenize") != stem("token")
    assert stem("optimization") == stem("optimizer") == stem("optimizers") != stem("optimal")
    assert stem("quantization") == stem("quantized") == stem("quantisation")
    assert stem("localization") != stem("local")
    pool = [
        Entry(
            id="t", title="A tokenizer for Turkish", summary="Subword units for rich morphology."
        ),
        Entry(id="k", title="Token pruning for vision transformers", summary="Fewer tokens."),
    ]
    result = Matcher().fit(pool).match(pool, [subscriber("m", keywords=["tokenization"])])
    why = {m.entry_id: m.why for m in result["m"]}
    assert "keyword: tokenization" in why["t"]
    assert not any(w.startswith("keyword:") for w in why["k"])


def test_a_title_naming_a_keyword_needs_less_to_be_sent() -> None:
    from bot.match.calibrate import Calibration, bars, select

    # Two subscribers × (four entries + ten background texts); the background's median is 0.
    background = np.tile(np.linspace(-0.45, 0.45, 10), (2, 1))
    ref = np.hstack([np.array([[0.9, 0.6, 0.6, 0.0], [0.9, 0.6, 0.6, 0.0]]), background])
    cal = Calibration(lift=0.0)
    thr, kw_thr = bars(ref, cal, baseline=10, offered=4)
    gap = np.quantile(background[0], 0.9) - np.median(background[0])
    assert np.allclose(thr, 2.0 * gap) and np.allclose(kw_thr, 1.5 * gap)
    assert kw_thr[0] < 0.6 < thr[0]  # the middle entries sit between the two bars
    ones = np.ones((2, 4), bool)
    plain = select(ref[:, :4], thr, ones, ~ones, np.array([10, 10]))
    # Row 0's title names its keyword in entry 1; row 1's in entry 3 (far below either bar).
    hits = (np.array([0, 1]), np.array([1, 3]), kw_thr)
    relieved = select(ref[:, :4], thr, ones, ~ones, np.array([10, 10]), hits)
    assert plain.tolist() == [[True, False, False, False]] * 2
    assert relieved.tolist() == [[True, True, False, False], [True, False, False, False]]
    # With no relief the two bars are one.
    assert np.allclose(*bars(ref, Calibration(lift=0.0, keyword_relief=0.0), 10, 4))
