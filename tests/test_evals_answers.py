"""The answers eval, the report with thresholds, feedback replay and the golden set, the feedback report, and the
embedding debug tools — small-sized, on real data slices, so the harness itself never breaks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chat.feedback.report import wilson
from evals.answers import cited_gold, contains, exact_match, f1, normalize
from evals.report import check_thresholds, load_thresholds
from tests.helpers.standin_llm import StandIn, grounded_reply

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
    a = Answer(text="They won by fourteen points [1].", citations=(c,), sources=(c,), abstained=False, turn_id="t",
               standalone_question="q", prompt_version=None, model=None)
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
    assert check_thresholds(thresholds, [ConfigResult("default", 200, 100, modes)], None) == [
        "retrieval keyword.ndcg_at_10 is missing (a threshold whose figure is missing fails)"]
    answers = Result(10, 2, 0.1, 0.4, 0.5, 0.9, 0.8, 0.8, 0.2, 0.9, hard_unanswerable=2, hard_abstention=0.9)
    assert check_thresholds(thresholds, good, answers) == []
    bad = Result(10, 2, 0.1, 0.4, 0.5, 0.9, 0.1, 0.1, 0.2, 0.9, hard_unanswerable=2, hard_abstention=0.9)
    assert check_thresholds(thresholds, good, bad) == ["answers citation_recall = 0.1000 < 0.7",
                                            "answers cited_gold_answer = 0.1000 < 0.65"]
    missing = Result(10, 0, 0.1, 0.4, 0.5, 0.9, 0.8, 0.8, 0.2, None, hard_unanswerable=2, hard_abstention=0.9)
    assert check_thresholds(thresholds, good, missing) == [
        "answers correct_abstention is missing (a threshold whose figure is missing fails)"]


def test_eval_run_writes_a_report_and_fails_below_thresholds(run, tiny_squad, monkeypatch, tmp_path) -> None:
    out = tmp_path / "report"
    with StandIn(grounded_reply) as llm:
        monkeypatch.setenv("CITEWISE_LLM_BASE_URL", llm.base_url)
        result = run("eval", "run", "--scifact", str(SHARED / "scifact"), "--squad", str(tiny_squad), "--out",
                     str(out), "--limit", "4", "--query-limit", "6", "--corpus-limit", "30", "--ef-search", "40")
    figures = json.loads((out / "figures.json").read_text())
    labels = [c["label"] for c in figures["retrieval"]]
    assert labels[1:] == ["ef_search 40", "exact vector search"] and len(figures["retrieval"][0]["results"]) == 4
    assert figures["answers"]["questions"] == 4
    assert (out / "retrieval_ndcg.png").stat().st_size > 10_000 and (out / "answer_latency.png").exists()
    summary = (out / "summary.md").read_text()
    assert "## Retrieval" in summary and "## Answers" in summary
    assert result.exit_code == (1 if figures["threshold_failures"] else 0)
    assert all(f"FAIL: {f}" in summary for f in figures["threshold_failures"])


def _rated_turns(run, tmp_path, monkeypatch, conn) -> tuple[str, str]:
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "billing.md").write_text("# Billing\n\nInvoices are sent on the first working day of "
                                                "each month by the finance team.\n")
    (tmp_path / "kb" / "leave.md").write_text("# Leave\n\nNew staff get 25 days of paid leave per year.\n")
    (tmp_path / "kb" / "travel.md").write_text("# Travel\n\nTrain tickets are booked through the travel desk.\n")
    assert run("ingest", str(tmp_path / "kb"), "--source", "kb").exit_code == 0
    with StandIn(grounded_reply) as llm:
        monkeypatch.setenv("CITEWISE_LLM_BASE_URL", llm.base_url)
        up = json.loads(run("ask", "When are invoices sent?", "--json").stdout)["turn_id"]
        down = json.loads(run("ask", "How many days of paid leave do new staff get?", "--json").stdout)["turn_id"]
    assert run("feedback", up, "up").exit_code == 0
    assert run("feedback", down, "down", "--comment", "meh").exit_code == 0
    return up, down


def test_replay_finds_regressions_and_golden_cases(run, tmp_path, monkeypatch, conn) -> None:
    up, down = _rated_turns(run, tmp_path, monkeypatch, conn)
    first = json.loads(run("eval", "replay", "--json").stdout)
    assert (first["up"], first["down"], first["regressions"], first["changed_down"]) == (1, 1, 0, 0)
    assert run("eval", "promote", up, "--note", "billing date").exit_code == 0
    assert "cited nothing" not in run("eval", "promote", down).stdout
    bogus = run("eval", "promote", "not-a-uuid")
    assert bogus.exit_code == 2 and "is not a turn id" in bogus.stdout + bogus.stderr
    # the billing document changes: its old chunk is gone, so the up-voted turn regresses and its golden case fails
    (tmp_path / "kb" / "billing.md").write_text("# Billing\n\nInvoices go out on the 5th of each month.\n")
    assert run("ingest", str(tmp_path / "kb"), "--source", "kb").exit_code == 0
    second = run("eval", "replay", "--json")
    report = json.loads(second.stdout)
    assert second.exit_code == 1, report
    assert report["regressions"] == 1 and report["regression_share"] == 1.0 and report["golden_failed"] >= 1
    regressed = next(c for c in report["cases"] if c["turn_id"] == up and c["vote"] == 1)
    assert regressed["outcome"] == "regressed" and regressed["missing"]


def test_feedback_report_by_setting(run, tmp_path, monkeypatch, conn) -> None:
    _rated_turns(run, tmp_path, monkeypatch, conn)
    chart = tmp_path / "fb.png"
    result = run("feedback", "report", "--json", "--chart", str(chart))
    rows = {(g["dimension"], g["value"]): g for g in json.loads(result.stdout)}
    assert rows[("preset", "precise")]["n"] == 2 and rows[("preset", "precise")]["up"] == 1
    assert rows[("temperature", "0–0.2")]["rate"] == 0.5 and rows[("source", "kb")]["n"] == 2
    lo, hi = rows[("abstained", "no")]["ci95"]
    assert lo < 0.5 < hi and chart.stat().st_size > 5_000
    assert wilson(0, 0) == (0.0, 1.0) and wilson(50, 100)[0] == pytest.approx(0.404, abs=0.001)


def test_debug_embeddings_and_neighbors(run, tmp_path, monkeypatch, conn) -> None:
    _rated_turns(run, tmp_path, monkeypatch, conn)
    png = tmp_path / "emb.png"
    result = run("debug", "embeddings", "--out", str(png), "--no-tsne")
    assert result.exit_code == 0 and "kb 3" in result.stdout and png.stat().st_size > 5_000
    too_few = run("debug", "embeddings", "--out", str(png), "--filter", "source=none")
    assert too_few.exit_code == 2 and "0 chunks match" in too_few.stdout + too_few.stderr
    chunk = conn.execute("SELECT id FROM chunks ORDER BY id LIMIT 1").fetchone()[0]
    found = json.loads(run("debug", "neighbors", chunk, "--json").stdout)
    assert found[0]["chunk_id"] == chunk and found[0]["similarity"] == pytest.approx(1.0, abs=1e-3)
    by_text = json.loads(run("debug", "neighbors", "paid leave for new staff", "--k", "1", "--json").stdout)
    assert by_text[0]["title"] == "Leave"


def test_halves_split_by_article_and_never_overlap() -> None:
    from evals import halves, squad

    _, qas = squad.load(SHARED / "xquad" / "xquad.en.dev.json")
    tune = {q.article for q in qas if halves.keep(q.article, "tune")}
    report = {q.article for q in qas if halves.keep(q.article, "report")}
    assert tune and report and not tune & report and tune | report == {q.article for q in qas}
    assert 8 <= len(tune) <= 16, "roughly half of the 24 articles"
    assert all(halves.keep(q.article, None) for q in qas)
    with pytest.raises(ValueError, match="unknown half"):
        halves.keep("x", "middle")


def test_a_failed_answer_counts_as_wrong() -> None:
    from evals.answers import run
    from evals.squad import QA

    class Failing:
        def ask(self, request):
            raise RuntimeError("the model went away")

    qas = [QA(f"q{i}", f"Question {i}?", ("yes",), f"p{i}", "A") for i in range(8)]
    result = run(Failing(), qas, 8, 0, unanswerable_share=0.25)  # type: ignore[arg-type]
    # issue 25: a failed answer is a refusal the user met, so it counts against false abstention too
    assert result.failures == 8 and result.false_abstention == 1.0
    assert result.gold_contained == 0.0 and result.citation_recall == 0.0, "failures are misses, not dropped"
    assert result.correct_abstention == 0.0, "a failure is not a correct abstention either"
