"""The topic taxonomy, a user's own topics.toml, and `digestbot topics`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from match_corpus import subscriber

from bot.cli import cli
from bot.config import Settings
from bot.errors import ConfigError
from bot.match import Matcher
from bot.match.features import phrase_key
from bot.match.topics import SHIPPED, known_topics, load_topics
from bot.models import Entry

MINE = """
[[topic]]
slug = "causal-inference"
name = "Causal inference"
description = "Causal discovery and treatment effect estimation."
vocabulary = ["causal", "counterfactual", "treatment effect"]

[[topic]]
slug = "quantization"
name = "Quantisation (mine)"
description = "My own take."
vocabulary = ["quantisation", "quantization"]
"""


def test_the_shipped_taxonomy_is_complete_and_well_formed() -> None:
    topics = load_topics()
    assert len(topics) >= 30
    slugs = [t.slug for t in topics]
    assert len(set(slugs)) == len(slugs)
    for t in topics:
        assert t.name and t.description and len(t.vocabulary) >= 8, t.slug
        assert all(phrase_key(v) for v in t.vocabulary), t.slug
    assert {
        "quantization",
        "mixture-of-experts",
        "peft",
        "speech-audio",
        "diffusion-models",
    } <= set(slugs)


def test_a_users_topics_file_adds_and_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "topics.toml").write_text(MINE)
    mine = Settings(base_dir=tmp_path).topics_file  # the topics.toml next to digestbot.toml
    assert mine == tmp_path / "topics.toml"
    topics = {t.slug: t for t in load_topics(mine)}
    assert topics["causal-inference"].vocabulary == ("causal", "counterfactual", "treatment effect")
    assert topics["quantization"].name == "Quantisation (mine)"
    assert set(topics) == known_topics(mine) and len(topics) == len(load_topics(SHIPPED)) + 1
    # Never one in the folder a command happens to run from.
    monkeypatch.chdir(tmp_path)
    assert "causal-inference" not in known_topics()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert Settings(base_dir=elsewhere).topics_file is None
    # A subscriber may follow the new topic, and the matcher uses it.
    pool = [
        Entry(
            id="c",
            title="Counterfactual estimation of treatment effects",
            summary="A causal model.",
        ),
        Entry(id="g", title="Graph neural networks", summary="Message passing on molecules."),
    ]
    result = (
        Matcher(topics_file=mine)
        .fit(pool)
        .match(pool, [subscriber("u", topics=["causal-inference"])])
    )
    assert result["u"][0].entry_id == "c" and result["u"][0].topic == "Causal inference"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[topic]]\nname = 'x'\nvocabulary = ['a']\n", "'slug' must be a word"),
        (
            "[[topic]]\nslug = 'x'\nname = 'X'\nvocabulary = []\n",
            "'vocabulary' must be a non-empty list",
        ),
        (
            "[[topic]]\nslug = 'x'\nname = 'X'\nvocabulary = ['a']\ncolour = 'red'\n",
            "unknown key(s) colour",
        ),
        ("[[topic]\n", "not valid TOML"),
    ],
)
def test_a_bad_topics_file_names_file_topic_and_fix(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "topics.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_topics(path)
    assert str(path) in str(e.value) and message in str(e.value)


def test_digestbot_topics_lists_them(tmp_path: Path) -> None:
    out = CliRunner().invoke(cli, ["topics"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert any(line.split() == ["quantization", "Quantization"] for line in lines)
    assert lines[-1] == f"{len(load_topics())} topics."
    (tmp_path / "mine.toml").write_text(MINE)
    out = CliRunner().invoke(cli, ["topics", "--topics", str(tmp_path / "mine.toml"), "-v"])
    assert (
        "causal-inference" in out.output
        and "vocabulary: causal, counterfactual, treatment effect" in out.output
    )
