"""Learning from feedback: per-source ratings, training pairs, the query adapter, versions, the gate, rollback.

Real PostgreSQL and MiniLM; the LLM is the local OpenAI-protocol stand-in (only the chain's turns need one)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from chat.engine.ask import ask
from chat.engine.llm import Endpoint
from chat.engine.retrieve import retrieve
from chat.engine.services import Services, open_pool
from chat.feedback.collect import collect
from chat.feedback.learning import MIN_PAIRS, learn
from chat.feedback.replay import feedback_cases
from chat.feedback.report import groups
from chat.turns.store import FeedbackError, annotate_feedback, rate_source, record_feedback
from chat.types import Question
from evals.learn_proof import simulate
from evals.retrieval import RERANKED, evaluate, prepare
from retrieval import learned
from retrieval.filters import EVERYTHING
from retrieval.learned import Adapter, LearnError, TrainSettings
from retrieval.rerank import load_reranker
from tests.corpus import documents, store_documents
from tests.helpers.standin_llm import StandIn


@pytest.fixture
def pool(url, conn, embedder, settings):
    store_documents(conn, embedder, settings, documents())
    p = open_pool(url, 4)
    yield p
    p.close()


def services(pool, embedder, settings, llm: StandIn | None = None) -> Services:
    end = Endpoint(llm.base_url, "k", "standin", False) if llm else None
    return Services(settings, pool, embedder, load_reranker(settings.rerank), end)  # type: ignore[arg-type]


def a_turn(pool, embedder, settings, user: str = "ada"):
    """A real answered turn citing the vacation and the expense passages."""
    def reply(req):
        prompt = req["messages"][-1]["content"]
        n = {t: next(line.split('"')[1] for line in prompt.splitlines() if f'title="{t}"' in line)
             for t in ("Vacation policy", "Expense reports")}
        return (f"New employees get 25 vacation days per year [{n['Vacation policy']}]. "
                f"Travel costs are reimbursed monthly [{n['Expense reports']}].")

    with StandIn(reply) as llm:
        return ask(services(pool, embedder, settings, llm),
                   Question(text="How many vacation days do new employees get, and when are travel costs "
                            "reimbursed?", conversation_id="c1", channel="web", user_id=user, scope=EVERYTHING))


def test_source_ratings_land_in_one_shape_from_every_door(pool, embedder, settings, conn) -> None:
    answer = a_turn(pool, embedder, settings)
    assert len(answer.citations) >= 2
    first, second = answer.citations[0], answer.citations[1]
    # the web UI's per-source buttons
    fid = rate_source(conn, answer.turn_id, first.number, "up", user_id="ada", channel="web")
    again = rate_source(conn, answer.turn_id, first.number, "down", user_id="ada", channel="web")
    assert again == fid, "a second click on the same source changes the rating, it does not add one"
    row = conn.execute("SELECT value, citation, chunk_id, on_source FROM feedback WHERE id = %s", (fid,)).fetchone()
    assert row == (-1, first.number, first.chunk_ids[0], True)
    # the API/CLI: a thumb that names a source rates the source too
    record_feedback(conn, answer.turn_id, "up", citation=second.number, user_id="bob", channel="api")
    # Slack: thumb at the click, then the modal names the source
    slack = record_feedback(conn, answer.turn_id, "down", user_id="cy", channel="slack")
    annotate_feedback(conn, slack, "wrong policy", second.number, "cy")
    shaped = conn.execute("SELECT user_id, value, chunk_id, channel FROM feedback WHERE on_source "
                          "ORDER BY id").fetchall()
    assert shaped == [("ada", -1, first.chunk_ids[0], "web"), ("bob", 1, second.chunk_ids[0], "api"),
                      ("cy", -1, second.chunk_ids[0], "slack")]
    with pytest.raises(FeedbackError, match="no citation \\[9\\]"):
        rate_source(conn, answer.turn_id, 9, "up")
    # answer-level readers count answer thumbs only: two (bob's up, cy's down), the latest per turn
    assert sum(g.n for g in groups(conn) if g.dimension == "abstained") == 1
    assert [c.vote for c in feedback_cases(conn)] == [-1]
    # what learning sees: a source marked bad is a negative and never a positive, even when another user marked
    # it good (bob up, cy down on the second source): conflicting ratings teach nothing about it
    found = collect(conn)
    assert found.counts["negative_marked_bad"] == 2 and found.counts["positive_marked_good"] == 0
    assert found.pairs == ()
    rate_source(conn, answer.turn_id, second.number, "up", user_id="cy")  # cy changes their mind
    found = collect(conn)
    assert found.counts["positive_marked_good"] == 1 and found.counts["negative_marked_bad"] == 1
    assert [(p.positive, p.negatives) for p in found.pairs] == [(second.chunk_ids[0], (first.chunk_ids[0],))]


def test_adapter_training_ranks_the_positive_higher_and_stays_near_identity() -> None:
    rng = np.random.default_rng(1)
    dim, n = 32, 200
    passages = rng.normal(size=(n, dim)).astype(np.float32)
    passages /= np.linalg.norm(passages, axis=1, keepdims=True)
    twist = np.linalg.qr(rng.normal(size=(dim, dim)))[0].astype(np.float32)  # queries live in a rotated space
    queries = 0.6 * passages @ twist.T + 0.4 * passages
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    train, test = slice(0, 150), slice(150, 200)
    weights, summary = learned.train(queries[train], passages[train], [np.zeros((0, dim))] * 150,
                                     TrainSettings(epochs=200, learning_rate=0.02, identity_weight=0.001))

    def hit_at_1(q: np.ndarray, idx: range) -> float:
        return float(np.mean([np.argmax(q[i] @ passages.T) == j for i, j in enumerate(idx)]))

    base = hit_at_1(queries[test], range(150, 200))
    adapted = hit_at_1(Adapter(1, "m", weights).apply(queries[test]), range(150, 200))
    assert adapted > base + 0.1, (base, adapted)  # learned on 150 queries, better on 50 it never saw
    assert summary["loss_last"] < summary["loss_first"]
    tight, _ = learned.train(queries[train], passages[train], [np.zeros((0, dim))] * 150,
                             TrainSettings(epochs=50, identity_weight=100.0))
    assert np.linalg.norm(tight - np.eye(dim)) < 0.05, "a strong identity pull keeps the map at the base model"


def test_versions_promote_and_roll_back_at_once_and_turns_record_theirs(pool, embedder, settings, conn) -> None:
    svc = services(pool, embedder, settings)
    base = retrieve(svc, "vacation days", EVERYTHING, [], 2)
    assert base.retriever_version is None
    flipped = learned.save(conn, embedder.name, -np.eye(embedder.dim, dtype=np.float32), {"note": "test"}, {})
    same = learned.save(conn, embedder.name, np.eye(embedder.dim, dtype=np.float32), {"note": "test"}, {})
    learned.activate(conn, same)
    learned.activate(conn, flipped)
    found = retrieve(svc, "vacation days", EVERYTHING, [], 2)
    assert found.retriever_version == flipped
    # the flipped query finds the least similar passages first: the version really is the one searching
    assert found.candidates[0].vector_similarity < base.candidates[0].vector_similarity
    answer = a_turn(pool, embedder, settings)
    assert conn.execute("SELECT retriever_version FROM turns WHERE id = %s",
                        (answer.turn_id,)).fetchone()[0] == flipped
    assert learned.rollback(conn) == same
    assert retrieve(svc, "vacation days", EVERYTHING, [], 2).retriever_version == same
    assert learned.rollback(conn) is None
    assert retrieve(svc, "vacation days", EVERYTHING, [], 2).retriever_version is None
    with pytest.raises(LearnError, match="nothing to roll back"):
        learned.rollback(conn)
    assert {v["status"] for v in learned.versions(conn)} == {"rejected"}


def test_a_version_id_used_again_in_an_emptied_database_loads_its_own_weights(embedder, conn) -> None:
    """A process reads several databases (the evals' copies, a restored backup) whose version ids start at 1 again;
    the cache of loaded versions must not hand one database's weights to another's version of the same id."""
    conn.execute("DELETE FROM retrievers WHERE NOT EXISTS (SELECT 1 FROM turns t WHERE t.retriever_version = "
                 "retrievers.id)")
    first = learned.save(conn, embedder.name, np.eye(embedder.dim, dtype=np.float32), {"note": "first"}, {})
    assert np.allclose(learned.load(conn, first).weights, np.eye(embedder.dim))
    conn.execute("DELETE FROM retrievers WHERE id = %s", (first,))
    conn.execute("SELECT setval('retrievers_id_seq', %s, false)", (first,))
    again = learned.save(conn, embedder.name, -np.eye(embedder.dim, dtype=np.float32), {"note": "again"}, {})
    assert again == first
    assert np.allclose(learned.load(conn, again).weights, -np.eye(embedder.dim))


def test_learn_refuses_too_little_feedback(pool, embedder, settings, conn) -> None:
    answer = a_turn(pool, embedder, settings)
    rate_source(conn, answer.turn_id, answer.citations[0].number, "up", user_id="ada")
    with pytest.raises(LearnError, match=f"at least {MIN_PAIRS} are needed"):
        learn(services(pool, embedder, settings))


@pytest.mark.slow  # ingests ~500 abstracts and replays every rated turn twice: minutes on two cores
def test_learn_end_to_end_on_simulated_feedback(scifact_slice, settings, embedder, run, url) -> None:
    """Simulated ratings (evals/learn_proof) → citewise learn → a gated version → eval with it → rollback."""
    eval_url, data = prepare(settings, embedder, scifact_slice, "train")
    made = simulate(eval_url, data, embedder, settings)
    assert made == len(data.queries) and simulate(eval_url, data, embedder, settings) == 0  # idempotent
    s = dataclasses.replace(settings, database_url=eval_url)
    pool = open_pool(eval_url, 4)
    try:
        outcome = learn(Services(s, pool, embedder, load_reranker(s.rerank), None))  # type: ignore[arg-type]
    finally:
        pool.close()
    counts = outcome.training["counts"]
    assert counts["turns_rated"] == made and counts["positive_marked_good"] > 0 and counts["negative_marked_bad"] > 0
    assert outcome.training["train_pairs"] + outcome.training["held_out_pairs"] == counts["pairs"]
    m = outcome.metrics
    gate = (m["held_out_mrr_at_10"]["candidate"] > m["held_out_mrr_at_10"]["in_use"]
            and m["unrated_mrr_at_10"]["candidate"] >= m["unrated_mrr_at_10"]["in_use"] - 0.005
            and m["unrated_rated_share"]["candidate"] <= m["unrated_rated_share"]["in_use"] + 0.005
            and m["golden_failed"]["candidate"] <= m["golden_failed"]["in_use"]
            and m["replay_regressions"]["candidate"] <= m["replay_regressions"]["in_use"]
            + max(1, int(0.02 * m["replay_regressions"]["up_voted"])))
    assert outcome.promoted == gate, outcome.reason
    import psycopg

    with psycopg.connect(eval_url, autocommit=True) as c:
        status = c.execute("SELECT status FROM retrievers WHERE id = %s", (outcome.version,)).fetchone()[0]
        assert status == ("active" if outcome.promoted else "rejected")
        scored = evaluate(eval_url, data, embedder, settings, [RERANKED], learned_version=str(outcome.version))
        assert 0.0 < scored[0].ndcg_at_10 <= 1.0
        if outcome.promoted:
            assert learned.rollback(c) is None and learned.active(c) is None
