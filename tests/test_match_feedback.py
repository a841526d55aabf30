"""The feedback model: 👍/👎 move a subscriber's ranking the right way, and a few votes do no harm."""

from __future__ import annotations

import random

import numpy as np
from match_corpus import THEMES, corpus, paper, subscriber

from bot.match import Matcher
from bot.match.feedback import FeedbackSettings, learn
from bot.models import Entry


def mean_rank(result: list, prefix: str) -> float:
    return float(np.mean([i for i, m in enumerate(result) if m.entry_id.startswith(prefix)]))


def test_votes_raise_the_liked_theme_and_lower_the_disliked_one() -> None:
    rng = random.Random(11)
    old = corpus(per_theme=6, seed=2)
    new = [paper(t, 500 + i, rng) for i in range(6) for t in THEMES]
    # Someone with broad interests: machine learning at large, nothing in particular (not even
    # "training", which in this small corpus is the post-training-quantization theme's word).
    sub = subscriber("b", description="machine learning research: models, methods and benchmarks")
    liked = [e for e in old if e.id.startswith("test:graph-")][:3]
    disliked = [e for e in old if e.id.startswith("test:rl-")][:3]
    m = Matcher().fit(old + new)
    before = m.match(new, [sub])["b"]
    votes = {"b": [(e, 1) for e in liked] + [(e, -1) for e in disliked]}
    after = m.match(new, [sub], feedback=votes)["b"]
    assert mean_rank(after, "test:graph-5") < mean_rank(before, "test:graph-5")
    assert mean_rank(after, "test:rl-5") > mean_rank(before, "test:rl-5")
    # Every new graph paper scores higher than before and ranks above every paper of the themes not
    # voted on; every RL paper scores lower and none is selected.
    old_score = {x.entry_id: x.score for x in before}
    assert all(
        x.score > old_score[x.entry_id] for x in after if x.entry_id.startswith("test:graph-")
    )
    assert all(x.score < old_score[x.entry_id] for x in after if x.entry_id.startswith("test:rl-"))
    order = [x.entry_id.split("-")[0] for x in after]
    others = [i for i, t in enumerate(order) if t in ("test:diffusion", "test:speech")]
    assert max(i for i, t in enumerate(order) if t == "test:graph") < min(others)
    assert not any(x.selected for x in before if x.entry_id.startswith("test:graph-"))
    assert not any(x.selected and x.entry_id.startswith("test:rl-") for x in after)
    # Half a dozen consistent votes make the theme stand out for this vague profile: graph papers
    # are sent (they were not before), named by a liked paper, and nothing else is.
    votes = {
        "b": [(e, 1) for e in old if e.id.startswith("test:graph-")]
        + [(e, -1) for e in old if e.id.startswith("test:rl-")]
    }
    sent_b = [x for x in m.match(new, [sub], feedback=votes)["b"] if x.selected]
    assert len(sent_b) >= 4 and all(x.entry_id.startswith("test:graph-") for x in sent_b)
    assert all(any(w.startswith("like “Graph") for w in x.why) for x in sent_b)
    # Someone who reads graph papers and liked some: what is sent names the liked paper as a reason.
    fan = subscriber("g", keywords=["message passing"])
    sent = [
        x for x in m.match(new, [fan], feedback={"g": [(e, 1) for e in liked]})["g"] if x.selected
    ]
    assert sent and all(x.entry_id.startswith("test:graph-") for x in sent)
    assert all(any(w.startswith("like “Graph") for w in x.why) for x in sent)


def test_a_few_votes_help_and_never_wreck_a_clear_profile() -> None:
    entries = corpus(per_theme=8, seed=3)
    sub = subscriber("q", description="quantization of neural networks", keywords=["quantization"])
    m = Matcher().fit(entries)
    before = [x.entry_id for x in m.match(entries, [sub])["q"]]
    # One stray 👎 on a quantization paper and one 👍 on a speech paper.
    quant = next(e for e in entries if e.id.startswith("test:quant-"))
    speech = next(e for e in entries if e.id.startswith("test:speech-"))
    after = [
        x.entry_id for x in m.match(entries, [sub], feedback={"q": [(quant, -1), (speech, 1)]})["q"]
    ]
    assert all(e.startswith("test:quant-") for e in before[:8])
    assert sum(e.startswith("test:quant-") for e in after[:8]) >= 7


def test_a_new_vote_replaces_the_old_one_and_no_votes_mean_no_change() -> None:
    entries = corpus(per_theme=2)
    m = Matcher().fit(entries)
    e = entries[0]
    model = learn({"a": [(e, 1), (e, -1)]}, ["a", "b"], m.space)
    x = m.space.transform([f"{e.title}. {e.title}. {e.summary}"])
    assert float((x @ model.rows[0].T).toarray()[0, 0]) < 0  # the 👎 won
    assert model.rows[1].nnz == 0 and 1 not in model.liked
    assert not model.liked  # the only 👍 was replaced


def test_feedback_for_unknown_subscribers_is_ignored() -> None:
    entries: list[Entry] = corpus(per_theme=3)
    sub = subscriber("q", keywords=["quantization"])
    m = Matcher().fit(entries)
    assert m.match(entries, [sub], feedback={"ghost": [(entries[0], 1)]}) == m.match(entries, [sub])


def test_a_dislike_asks_for_half_the_margin_a_like_asks_for() -> None:
    entries = corpus(per_theme=2)
    m = Matcher().fit(entries)
    e = entries[0]
    x = m.space.transform([f"{e.title}. {e.title}. {e.summary}"])

    def moved(vote: int, dislike: float) -> float:
        settings = FeedbackSettings(margin=2.0, ridge=1.0, dislike=dislike)
        model = learn({"a": [(e, vote)]}, ["a"], m.space, settings)
        return float((x @ model.rows[0].T).toarray()[0, 0])

    assert np.isclose(moved(-1, 0.5), 0.5 * moved(-1, 1.0)) and moved(-1, 0.5) < 0
    assert np.isclose(moved(1, 0.5), moved(1, 1.0)) and moved(1, 0.5) > 0
    assert FeedbackSettings().dislike == 0.5
