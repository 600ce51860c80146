"""Prometheus metrics for ``/metrics``: HTTP traffic from prometheus-fastapi-instrumentator, plus the answer
pipeline's own histograms and counters, observed once per answer at the front desk (so every door counts).

Each ``citewise serve`` process exposes its own figures; Prometheus scrapes every replica and sums them.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import REGISTRY, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

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


class _Sources:
    """Each synced source's state as gauges, read from the database when scraped: a sync that any worker ran
    shows on every replica's ``/metrics``."""

    def __init__(self) -> None:
        self.pool: Any = None

    def collect(self):  # prometheus_client's collector protocol
        if self.pool is None:
            return
        from retrieval.sources import listing

        try:
            with self.pool.connection(timeout=2) as conn:
                rows = listing(conn)
        except Exception:  # a scrape must not fail because the database is away
            return
        docs = GaugeMetricFamily("citewise_source_documents", "Documents a synced source holds", labels=["source"])
        last = GaugeMetricFamily("citewise_source_last_sync_timestamp_seconds", "When the source last synced",
                                 labels=["source"])
        ok = GaugeMetricFamily("citewise_source_last_sync_ok", "1 when the last sync reached its folder",
                               labels=["source"])
        counts = GaugeMetricFamily("citewise_source_last_sync_files", "Files the last sync added, updated, "
                                   "deleted or failed", labels=["source", "outcome"])
        for r in rows:
            docs.add_metric([r["name"]], r["documents"])
            if r["synced_at"] is not None:
                last.add_metric([r["name"]], r["synced_at"].timestamp())
                ok.add_metric([r["name"]], 1.0 if r["counts"] else 0.0)
                for k in ("added", "updated", "deleted", "failed"):
                    counts.add_metric([r["name"], k], (r["counts"] or {}).get(k, 0))
        yield from (docs, last, ok, counts)


_SOURCES = _Sources()
REGISTRY.register(_SOURCES)


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


def instrument(app, pool: Any = None) -> None:
    """Request counts and latencies per route, the sources' state (from ``pool``), and the ``/metrics`` endpoint,
    on the FastAPI app."""
    _SOURCES.pool = pool
    from prometheus_fastapi_instrumentator import Instrumentator

    Instrumentator(excluded_handlers=["/metrics"]).instrument(app).expose(app, include_in_schema=False)
