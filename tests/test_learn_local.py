"""The learned retriever keeps its changes local: the adapter applies near rated questions only, the memory of
ratings moves rated passages for close questions only, and the gate rejects a version that lowers questions about
documents nobody rated. Real PostgreSQL and MiniLM."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from chat.engine.retrieve import retrieve
from chat.engine.services import Services, open_pool
from chat.feedback.collect import collect
from chat.feedback.learning import UNRATED_SLACK, fit, learn, rated_document_ids, unrated_check, unrated_questions
from evals.learn_proof import simulate
from evals.learn_split import TODAY
from evals.retrieval import prepare
from retrieval import learned
from retrieval.adapter import Adapter, Memory
from retrieval.embed import embed_query
from retrieval.filters import EVERYTHING
from retrieval.rerank import load_reranker
from tests.corpus import documents, store_documents

RATED = "How many vacation days do new employees get?"
FAR = "How are travel expenses reimbursed?"


@pytest.fixture
def svc(url, conn, embedder, settings):
    store_documents(conn, embedder, settings, documents())
    pool = open_pool(url, 4)
    yield Services(settings, pool, embedder, load_reranker(settings.rerank), None)  # type: ignore[arg-type]
    pool.close()


def local(embedder, weights: np.ndarray, memory: Memory | None = None) -> Adapter:
    anchor = embed_query(embedder, RATED)[None, :]
    return Adapter(-1, embedder.name, weights.astype(np.float32), anchor, 0.7, 0.9, memory)


def test_a_local_adapter_moves_rated_questions_and_leaves_others_exactly_as_they_were(svc, embedder) -> None:
    assert float(embed_query(embedder, RATED) @ embed_query(embedder, FAR)) < 0.7, "the test needs a far question"
    flipped = local(embedder, -np.eye(embedder.dim))
    base, near = retrieve(svc, RATED, EVERYTHING, [], 2, None), retrieve(svc, RATED, EVERYTHING, [], 2, flipped)
    # near the rated question the adapter is fully on: the flipped query finds the least similar passages first
    assert near.candidates[0].vector_similarity < base.candidates[0].vector_similarity
    far_base, far = retrieve(svc, FAR, EVERYTHING, [], 2, None), retrieve(svc, FAR, EVERYTHING, [], 2, flipped)
    assert [(h.chunk_id, h.score) for h in far.reranked] == [(h.chunk_id, h.score) for h in far_base.reranked]
    assert [h.chunk_id for h in far.candidates] == [h.chunk_id for h in far_base.candidates]
    # the first kind (no anchors) flips every query, the far one too
    glob = Adapter(-1, embedder.name, -np.eye(embedder.dim, dtype=np.float32))
    assert retrieve(svc, FAR, EVERYTHING, [], 2, glob).candidates[0].vector_similarity < \
        far_base.candidates[0].vector_similarity


def test_the_memory_lifts_a_rated_passage_for_close_questions_only(svc, embedder) -> None:
    base = retrieve(svc, RATED, EVERYTHING, [], 3, None)
    rated = next(h for h in base.candidates if "Expense" in h.title)  # rated good for the vacation question
    assert base.reranked[0].chunk_id != rated.chunk_id
    key = embed_query(embedder, RATED)[None, :]
    memory = Memory(key, (rated.chunk_id,), np.array([1.0], np.float32), 0.7, 5.0)
    model = local(embedder, np.eye(embedder.dim), memory)
    assert retrieve(svc, RATED, EVERYTHING, [], 3, model).reranked[0].chunk_id == rated.chunk_id
    close = retrieve(svc, "How many vacation days does a new employee get per year?", EVERYTHING, [], 3, model)
    assert close.reranked[0].chunk_id == rated.chunk_id, "a close paraphrase inherits the rating"
    far_base, far = retrieve(svc, FAR, EVERYTHING, [], 3, None), retrieve(svc, FAR, EVERYTHING, [], 3, model)
    assert [(h.chunk_id, h.score) for h in far.reranked] == [(h.chunk_id, h.score) for h in far_base.reranked]
    # a bad verdict pushes the passage down for the rated question
    top = base.reranked[0].chunk_id
    sunk = local(embedder, np.eye(embedder.dim), Memory(key, (top,), np.array([-1.0], np.float32), 0.7, 5.0))
    assert retrieve(svc, RATED, EVERYTHING, [], 3, sunk).reranked[0].chunk_id != top


def test_a_local_version_round_trips_through_the_versions_table(svc, embedder, conn, run) -> None:
    key = embed_query(embedder, RATED)[None, :]
    model = local(embedder, np.eye(embedder.dim) * 1.01,
                  Memory(key, ("chunk-a",), np.array([1.0], np.float32), 0.75, 1.5))
    metrics = {"held_out_mrr_at_10": {"in_use": 0.5, "candidate": 0.6},
               "unrated_mrr_at_10": {"in_use": 0.8, "candidate": 0.79, "questions": 200}}
    version = learned.save(conn, embedder.name, model, {"train_pairs": 60}, metrics, "candidate")
    learned._CACHE.clear()
    back = learned.load(conn, version)
    assert (back.near, back.full) == pytest.approx((0.7, 0.9))
    assert back.memory is not None and back.memory.chunk_ids == ("chunk-a",)
    assert back.memory.threshold == pytest.approx(0.75) and back.memory.weight == pytest.approx(1.5)
    vecs = np.stack([embed_query(embedder, RATED), embed_query(embedder, FAR)])
    assert np.allclose(back.apply(vecs), model.apply(vecs))
    old = learned.save(conn, embedder.name, np.eye(embedder.dim, dtype=np.float32), {"train_pairs": 50},
                       {"held_out_mrr_at_10": {"in_use": 0.4, "candidate": 0.5}})
    assert learned.load(conn, old).anchors is None, "the first kind still loads, applied everywhere"
    shown = run("learn", "--status", "--json")
    rows = {v["version"]: v for v in json.loads(shown.stdout)}
    assert rows[version]["kind"] == "local-adapter" and rows[old]["kind"] == "query-adapter"
    table = run("learn", "--status").stdout
    assert "0.8 → 0.79 (200 questions)" in table and "0.5 → 0.6" in table and "not measured" in table


@pytest.mark.slow  # ingests ~500 abstracts, simulates 120 rated turns, trains and checks two candidates: minutes
def test_the_unrated_check_sees_the_first_adapter_pull_toward_rated_documents_and_not_the_local_one(
        scifact_slice, settings, embedder, run) -> None:
    eval_url, data = prepare(settings, embedder, scifact_slice, "train")
    simulate(eval_url, data, embedder, settings)
    s = dataclasses.replace(settings, database_url=eval_url)
    pool = open_pool(eval_url, 4)
    try:
        svc = Services(s, pool, embedder, load_reranker(s.rerank), None)  # type: ignore[arg-type]
        with pool.connection() as c:
            pairs = list(collect(c).pairs)
            questions = unrated_questions(c, pairs)
            touched = {p.positive for p in pairs} | {n for p in pairs for n in p.negatives}
            touched_docs = {r[0] for r in c.execute("SELECT document_id FROM chunks WHERE id = ANY(%s)",
                                                    (sorted(touched),))}
            rated = rated_document_ids(c, pairs)
            # trained on every pair, so the figures do not depend on which turns a run holds out (turn ids are
            # random, and the held-out fifth moves the slice's small effect either side of the bound)
            today, _ = fit(c, embedder, pairs, TODAY)
            new, _ = fit(c, embedder, pairs)
        assert len(questions) >= 100 and not {d for _, d in questions} & touched_docs
        base_mrr, base_share = unrated_check(svc, questions, rated, None)
        _, today_share = unrated_check(svc, questions, rated, today)
        new_mrr, new_share = unrated_check(svc, questions, rated, new)
        # the gate's whole path runs too, and says why when it refuses
        outcome = learn(svc, cfg=TODAY, promote=False)
    finally:
        pool.close()
    # the first adapter pulls written questions about unrated documents toward the rated ones; the local one does
    # not. On this 120-query slice the first adapter's pull (+0.0043 of the top 10) stays under the gate's bound
    # (0.005); on SciFact's whole tune half it is +0.0075 and the gate rejects it (evals.learn_proof, the page of
    # 2026-12-06): the rejection itself is measured there, not here
    assert today_share > base_share, (base_share, today_share)
    assert new_share <= base_share + UNRATED_SLACK and new_mrr >= base_mrr - UNRATED_SLACK, (base_share, new_share)
    assert new_share < today_share
    assert set(outcome.metrics) >= {"unrated_mrr_at_10", "unrated_rated_share"}
    # the check anyone can repeat on a split of their own: the latest version, by rated and unrated documents
    shown = json.loads(run("eval", "retrieval", "--dataset", str(scifact_slice), "--split", "train",
                           "--mode", "hybrid+rerank", "--learned", "latest", "--by-rating", "--json").stdout)
    parts = shown["by_rating"]
    assert set(parts) == {"about rated documents", "about unrated documents", "all"}
    assert parts["about rated documents"][0]["queries"] + parts["about unrated documents"][0]["queries"] == \
        parts["all"][0]["queries"] == 120
