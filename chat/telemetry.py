"""Prometheus metrics for ``/metrics``: HTTP traffic from prometheus-fastapi-instrumentator, plus the answer
pipeline's own histograms and counters, observed once per answer at the front desk (so every door counts).

Each ``citewise serve`` process exposes its own figures; Prometheus scrapes every replica and sums them.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from chat.types import Answer

# seconds; a 2-core CPU answers in tens of seconds, a GPU endpoint in one or two
_STAGE_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_ANSWER_BUCKETS = (0.25, 0.5, 1, 2, 3, 5, 8, 13, 20, 30, 45, 60, 90, 120, 180)

RETRIEVAL = Histogram("citewise_retrieval_seconds", "Query embedding plus hybrid search, per answer",
                      buckets=_STAGE_BUCKETS)
RERANK = Histogram("citewise_rerank_seconds", "Re-ranking the candidates, per answer", buckets=_STAGE_BUCKETS)
FIRST_TOKEN = Histogram("citewise_first_token_seconds", "From the start of generation to the model's first token",
                        buckets=_ANSWER_BUCKETS)
FIRST_VERIFIED = Histogram("citewise_first_verified_seconds",
                           "From the start of generation to the first verified sentence a user sees",
                           buckets=_ANSWER_BUCKETS)
TOTAL = Histogram("citewise_answer_seconds", "Whole answer, question in to last sentence out",
                  buckets=_ANSWER_BUCKETS)
ANSWERS = Counter("citewise_answers_total", "Answers given, by door", ["channel"])
ABSTENTIONS = Counter("citewise_abstentions_total", "Answers that abstained, by reason", ["reason"])
FAILURES = Counter("citewise_answer_failures_total", "Answers that failed (LLM or database lost), by kind", ["kind"])
THUMBS = Counter("citewise_feedback_total", "Thumbs given, by value (up, down)", ["value"])
SOURCE_THUMBS = Counter("citewise_source_feedback_total", "Thumbs on single cited sources, by value (up, down)",
                        ["value"])
GATE = Counter("citewise_gate_rejections_total", "Questions the admission gate refused (503), by why", ["why"])


def observe(answer: Answer, channel: str) -> None:
    ms = answer.latency
    ANSWERS.labels(channel).inc()
    if answer.abstained:
        ABSTENTIONS.labels(answer.abstain_reason or "model").inc()
    if "embed_ms" in ms or "search_ms" in ms:
        RETRIEVAL.observe((ms.get("embed_ms", 0.0) + ms.get("search_ms", 0.0)) / 1000)
    for key, metric in (("rerank_ms", RERANK), ("first_token_ms", FIRST_TOKEN),
                        ("first_verified_ms", FIRST_VERIFIED), ("total_ms", TOTAL)):
        if key in ms:
            metric.observe(ms[key] / 1000)


def instrument(app) -> None:
    """Request counts and latencies per route, and the ``/metrics`` endpoint, on the FastAPI app."""
    from prometheus_fastapi_instrumentator import Instrumentator

    Instrumentator(excluded_handlers=["/metrics"]).instrument(app).expose(app, include_in_schema=False)
