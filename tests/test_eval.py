"""The eval harness on a small slice of SciFact, so the harness itself never breaks (the full run is `make eval`)."""

from __future__ import annotations

from pathlib import Path

from evals import beir
from evals.ir_metrics import dedupe, mrr_at, ndcg_at, recall_at
from evals.retrieval import evaluate, prepare

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"


def test_metrics_on_known_rankings() -> None:
    rel = {"a": 1, "b": 1}
    assert ndcg_at(["a", "b", "c"], rel) == 1.0
    assert ndcg_at(["c", "d"], rel) == 0.0
    assert 0 < ndcg_at(["c", "a"], rel) < 1
    assert recall_at(["a", "x"], rel, 10) == 0.5
    assert mrr_at(["x", "y", "b"], rel) == 1 / 3
    assert dedupe(["a", "b", "a", "c", "b"]) == ["a", "b", "c"]


def test_scifact_slice_end_to_end(server_url, embedder, settings) -> None:
    assert SCIFACT.exists(), f"the public eval data is expected at {SCIFACT} (shared/data beside the repo)"
    data = beir.load(SCIFACT, "train", limit=8)
    assert len(data.queries) == 8
    url, data = prepare(settings, embedder, SCIFACT, "train", limit=8, corpus_limit=40)
    results = {r.mode: r for r in evaluate(url, data, embedder, settings, ["vector", "keyword", "hybrid"])}
    assert set(results) == {"vector", "keyword", "hybrid"}
    for r in results.values():
        assert r.queries == 8
        assert 0.0 <= r.ndcg_at_10 <= 1.0 and 0.0 <= r.recall_at_100 <= 1.0
    # on a ~50-document slice the judged abstracts are easy to find: a broken ranking would not get here
    assert results["hybrid"].recall_at_10 >= 0.8
    assert results["hybrid"].ndcg_at_10 >= 0.6
    # a second prepare reuses the isolated database (idempotent ingest)
    url2, _ = prepare(settings, embedder, SCIFACT, "train", limit=8, corpus_limit=40)
    assert url2 == url


def test_any_beir_folder_name_works(settings, embedder, server_url, tmp_path) -> None:
    """A standard BEIR name such as trec-covid used to fail on an invalid isolated database name."""
    import shutil

    folder = tmp_path / "trec-covid"
    (folder / "qrels").mkdir(parents=True)
    shutil.copy(SCIFACT / "queries.jsonl", folder / "queries.jsonl")
    shutil.copy(SCIFACT / "qrels" / "train.tsv", folder / "qrels" / "train.tsv")
    shutil.copy(SCIFACT / "corpus.jsonl", folder / "corpus.jsonl")
    url, data = prepare(settings, embedder, folder, "train", limit=3, corpus_limit=10)
    assert len(data.queries) == 3 and "trec_covid" in url


def test_tune_and_report_halves_of_the_queries_never_overlap() -> None:
    tune, report = beir.load(SCIFACT, "train", half="tune"), beir.load(SCIFACT, "train", half="report")
    assert tune.queries and report.queries and not set(tune.queries) & set(report.queries)
    assert len(tune.queries) + len(report.queries) == len(beir.load(SCIFACT, "train").queries)
