"""The answers eval, the report with thresholds, feedback replay and the golden set, the feedback report, and the
embedding debug tools — small-sized, on real data slices, so the harness itself never breaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chat.feedback_report import wilson
from evals.answers import cited_gold, contains, exact_match, f1, normalize
from evals.report import check, load_thresholds
from evals.standin_llm import StandIn, grounded_reply

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def tiny_squad(tmp_path) -> Path:
    """Two XQuAD articles, three paragraphs each, with their questions (real public data, small)."""
    data = json.loads((SHARED / "xquad" / "xquad.en.dev.json").read_text())["data"][:2]
    for article in data:
        article["paragraphs"] = article["paragraphs"][:3]
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"data": data, "version": "tiny"}))
    return path


def test_answer_metrics() -> None:
    assert normalize("The Broncos [1].") == "broncos"
    assert exact_match("the Denver Broncos", ("Denver Broncos",)) == 1.0
    assert f1("Denver won", ("Denver Broncos",)) == pytest.approx(0.5)
    assert contains("It was the Denver Broncos [2].", ("Denver Broncos",)) == 1.0
    assert contains("It happened in 2016 [1].", ("2",)) == 0.0, "token boundaries: 2 is not 2016"
    assert contains("It took 2 days.", ("2",)) == 1.0
    from chat.types import Answer, Citation

    c = Citation(1, ("c",), "d", "t", "s", "u", 0, 10, "The Broncos beat the Panthers 24 to 10 in Santa Clara.")
    a = Answer("They won by fourteen points [1].", (c,), (c,), False, "t", "q", None, None)
    assert cited_gold(a, ("24 to 10",)) == 1.0, "judged by the gold answer, not by overlap with the reply"
    assert cited_gold(a, ("Levi's Stadium",)) == 0.0


def test_eval_answers_through_the_chain(run, tiny_squad, monkeypatch, tmp_path) -> None:
    exported = tmp_path / "to-label.jsonl"
    with StandIn(grounded_reply) as llm:
        monkeypatch.setenv("CITEWISE_LLM_BASE_URL", llm.base_url)
        result = run("eval", "answers", "--dataset", str(tiny_squad), "--limit", "8", "--seed", "3", "--json",
                     "--sentences", str(exported))
        again = run("eval", "answers", "--dataset", str(tiny_squad), "--limit", "8", "--seed", "3", "--json")
    assert result.exit_code == 0, result.stdout
    first, second = json.loads(result.stdout), json.loads(again.stdout)
    assert first["questions"] == 8 and first["unanswerable"] == 2 and first["failures"] == 0, first["examples"][:2]
    assert first["citation_recall"] > 0.3 and first["f1"] > 0 and first["correct_abstention"] is not None
    assert first["hard_unanswerable"] == 2 and first["hard_abstention"] is not None, "gold paragraph withheld"
    assert first["model_citation_recall"] is not None and first["repaired_share"] is not None
    assert isinstance(first["false_abstention_by_reason"], dict) and "sentences" not in first
    assert {"embed_ms", "search_ms", "rerank_ms", "total_ms"} <= set(first["latency_ms"])
    first.pop("latency_ms"), second.pop("latency_ms")
    assert first == second, "same seed, same questions, same answers"
    records = [json.loads(line) for line in exported.read_text().splitlines()]
    assert records, "answers the model wrote are exported to label"
    for rec in records:
        numbers = {s["number"] for s in rec["sources"]}
        assert rec["question"] and numbers and all(s["text"] for s in rec["sources"])
        assert all(set(s["cited"]) <= numbers and s["label"] is None for s in rec["sentences"])
    assert any(s["cited"] for rec in records for s in rec["sentences"]), "the stand-in cites its sources"


def test_thresholds_are_checked() -> None:
    from evals.answers import Result
    from evals.retrieval import ConfigResult, ModeResult

    thresholds = load_thresholds()
    modes = [ModeResult("hybrid+rerank", 9, 0.75, 0.8, 0.96, 0.7, 1, 2),
             ModeResult("hybrid", 9, 0.73, 0.8, 0.96, 0.7, 1, 2)]
    good = [ConfigResult("default", 200, 100, [*modes, ModeResult("keyword", 9, 0.70, 0.8, 0.96, 0.7, 1, 2)])]
    assert check(thresholds, [ConfigResult("default", 200, 100, modes)], None) == [
        "retrieval keyword.ndcg_at_10 is missing (a threshold whose figure is missing fails)"]
    answers = Result(10, 2, 0.1, 0.4, 0.5, 0.9, 0.8, 0.8, 0.2, 0.9, hard_unanswerable=2, hard_abstention=0.9)
    assert check(thresholds, good, answers) == []
    bad = Result(10, 2, 0.1, 0.4, 0.5, 0.9, 0.1, 0.1, 0.2, 0.9, hard_unanswerable=2, hard_abstention=0.9)
    assert check(thresholds, good, bad) == ["answers citation_recall = 0.1000 < 0.7",
                                            "answers cited_gold_answer = 0.1000 < 0.65"]
    missing = Result(10, 0, 0.1, 0.4, 0.5, 0.9, 0.8, 0.8, 0.2, None, hard_unanswerable=2, hard_abstention=0.9)
    assert check(thresholds, good, missing) == [
        "answers correct_abstention is missing (a threshold whose figure is missing fails)"]
