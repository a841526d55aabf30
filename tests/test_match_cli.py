"""`digestbot match`: reasons on screen and in JSON; exclusions and followed authors end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from match_corpus import corpus

from bot.cli import cli

EVAL = Path(__file__).resolve().parents[1].parent / "shared" / "eval"


def write_papers(path: Path) -> None:
    papers = [
        {
            "paper": {
                "id": f"2601.{i:05d}",
                "title": e.title,
                "summary": e.summary,
                "authors": [{"name": "Grace Hopper"}]
                if e.id.startswith("test:graph-") and i % 2
                else [],
            }
        }
        for i, e in enumerate(corpus(per_theme=6))
    ]
    papers.append(
        {
            "paper": {
                "id": "2601.99999",
                "title": "Quantization for <b>medical</b> imaging",
                "summary": "Low-bit post-training quantization of medical segmentation networks.",
                "authors": [{"name": "Grace Hopper"}],
            }
        }
    )
    path.write_text(json.dumps(papers))


@pytest.fixture
def setup(tmp_path: Path) -> Path:
    write_papers(tmp_path / "papers.json")
    subs = tmp_path / "subs"
    subs.mkdir()
    (subs / "q.toml").write_text(
        'email = "q@example.org"\n[interests]\n'
        'keywords = ["quantization"]\nexclude = ["medical"]\nauthors = ["Grace Hopper"]\n'
    )
    return tmp_path


def test_match_shows_reasons_and_honours_exclude_and_authors(setup: Path) -> None:
    out = CliRunner().invoke(
        cli,
        ["match", "--entries", str(setup / "papers.json"), "--subscriptions", str(setup / "subs")],
    )
    assert out.exit_code == 0, out.output
    text = out.output
    assert text.startswith("q: ")
    assert "why: by an author you follow" in text  # Grace Hopper's graph papers get in
    assert "why: keyword: quantization; topic: Quantization; terms: " in text
    assert "medical" not in text  # excluded, though by a followed author and on a keyword


def test_match_json_has_every_entry_with_topic_and_why(setup: Path) -> None:
    out = CliRunner().invoke(
        cli,
        [
            "match",
            "--entries",
            str(setup / "papers.json"),
            "--subscriptions",
            str(setup / "subs"),
            "--json",
            "--all",
        ],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    [sub] = data["subscribers"]
    assert len(sub["entries"]) == 31
    med = next(e for e in sub["entries"] if e["id"] == "arxiv:2601.99999")
    assert med["selected"] is False and med["why"] == []
    chosen = [e for e in sub["entries"] if e["selected"]]
    assert chosen[0]["why"][0] == "by an author you follow"
    assert all(e["why"] and e["topic"] for e in chosen)
    scores = [e["score"] for e in sub["entries"] if not e["selected"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("flag", "ndcg", "f1"), [((), 0.92, 0.73), (("--keywords-only",), 0.87, 0.72)]
)
def test_quality_on_the_shared_eval_set(flag: tuple[str, ...], ndcg: float, f1: float) -> None:
    if not (EVAL / "score.py").is_file():
        pytest.skip(f"the shared evaluation set is not at {EVAL}")
    run = subprocess.run(
        [sys.executable, str(EVAL / "score.py"), *flag, "--command", f"{sys.executable} -m bot"],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = dict(kv.split("=") for kv in run.stdout.split()[-4:])
    assert float(figures["nDCG@10"]) >= ndcg and float(figures["F1"]) >= f1, run.stdout


CAUSAL = """\
[[topic]]
slug = "causal-inference"
name = "Causal inference"
description = "Causal discovery and effect estimation"
vocabulary = ["causal", "counterfactual", "treatment effect"]
"""


def test_match_topics_checks_the_subscribers_and_a_skipped_file_exits_1(
    setup: Path, here: Path
) -> None:
    """--topics was given to the matcher only: a subscriber following one of its topics was
    skipped as "not a known topic", and a skipped subscriber file still exited 0."""
    (here / "my-topics.toml").write_text(CAUSAL)
    (setup / "subs" / "dan.toml").write_text(
        'email = "dan@example.org"\n[interests]\ntopics = ["causal-inference"]\n'
    )
    args = ["match", "--entries", str(setup / "papers.json"), "--subscriptions", "subs"]
    out = CliRunner().invoke(cli, [*args, "--topics", "my-topics.toml"])
    assert (out.exit_code, out.stderr) == (0, "")
    assert "dan: " in out.stdout and "q: " in out.stdout
    without = CliRunner().invoke(cli, args)  # the shipped topics alone do not know it
    assert without.exit_code == 1
    assert without.stderr == (
        f"warning: {here / 'subs' / 'dan.toml'}: interests.topics: 'causal-inference' is not a "
        "known topic; 'digestbot topics' lists them (this subscriber is skipped)\n"
        "1 subscriber file skipped (see the warnings); fix and run match again\n"
    )
    (setup / "subs" / "dan.toml").write_text("email = \n")  # not TOML: skipped, exit 1 too
    bad = CliRunner().invoke(cli, [*args, "--topics", "my-topics.toml", "--json"])
    assert bad.exit_code == 1
    assert "dan.toml: not valid TOML" in bad.stderr
    assert [s["id"] for s in json.loads(bad.stdout)["subscribers"]] == ["q"]
