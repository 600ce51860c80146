"""Beyond capacity, answers are refused with 503 + Retry-After (none hang) and every feedback is stored: a short,
bounded load (locust) against a running server with a deliberately tiny gate (the full run is
`python -m evals.bench.load`)."""

from __future__ import annotations

import pytest

from evals.bench.load import check_feedback, run
from tests.helpers.serving import serve
from tests.helpers.standin_llm import StandIn, grounded_reply, grounded_sentences


@pytest.mark.slow
def test_overload_is_refused_with_retry_after_and_nothing_is_lost(demo_db, tmp_path) -> None:
    with StandIn(grounded_reply, delay_s=0.01) as llm, serve(tmp_path, {
            "CITEWISE_DATABASE_URL": demo_db, "CITEWISE_LLM_BASE_URL": llm.base_url, "CITEWISE_LLM_MODEL": "standin",
            "CITEWISE_LLM_API_KEY": "x", "CITEWISE_MAX_CONCURRENT_ANSWERS": "1",
            "CITEWISE_MAX_QUEUED_ANSWERS": "2"}) as base:
        result = run(base, users=8, duration=8, timeout=60)
    assert result["tool"] == "locust" and result["errors"] == 0, result["error_samples"]
    assert result["answered"] >= 3 and result["refused_503"] >= 3
    assert result["refusals_without_retry_after"] == 0
    assert check_feedback(demo_db, result["feedback_ids"]) == result["feedback_posted"] > 0


@pytest.mark.slow
def test_killing_the_server_mid_answer_leaves_no_half_turn(demo_db, tmp_path) -> None:
    import json
    import os
    import signal

    import httpx
    import psycopg

    question = "Which file types can I ingest, and how are they read?"
    procs: list = []
    with StandIn(grounded_sentences(3), delay_s=0.1) as llm, serve(tmp_path, {
            "CITEWISE_DATABASE_URL": demo_db, "CITEWISE_LLM_BASE_URL": llm.base_url, "CITEWISE_LLM_MODEL": "standin",
            "CITEWISE_LLM_API_KEY": "x"}, procs=procs) as base:
        tokens = 0
        with httpx.stream("POST", f"{base}/v1/ask?stream=true", json={"question": question}, timeout=30) as r:
            for line in r.iter_lines():
                if line.startswith("data: ") and "text" in json.loads(line[6:]):
                    tokens += 1  # a token event is a whole verified sentence: the answer has two more to go
                    if tokens == 1:
                        os.kill(procs[0].pid, signal.SIGKILL)
                        break
        procs[0].wait(10)
    assert tokens == 1
    with psycopg.connect(demo_db) as conn:
        rows = conn.execute("SELECT status FROM turns WHERE question = %s", (question,)).fetchall()
    assert rows in ([], [("failed",)]), "a killed answer is recorded as failed or not at all, never half"
