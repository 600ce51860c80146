"""The pipeline's Prometheus figures move with what they count: gate refusals, thumbs, answers by door."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from chat import telemetry as metrics
from chat.desk.gate import Busy, Gate
from chat.types import Answer


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_full_gate_counts_its_refusals() -> None:
    gate = Gate(concurrent=1, queued=0, wait_s=1)
    before = _value("citewise_gate_rejections_total", why="full")
    with gate.slot():
        with pytest.raises(Busy):
            gate.refuse_if_full()
        with pytest.raises(Busy):
            gate.acquire()
    assert _value("citewise_gate_rejections_total", why="full") == before + 2


def test_an_answer_is_observed_once_with_its_stage_timings_and_abstention_reason() -> None:
    answer = Answer(text="The sources do not contain the answer.", citations=(), sources=(), abstained=True,
                    turn_id=None, standalone_question="q", prompt_version="v", model="m",
                    latency={"embed_ms": 12.0, "search_ms": 8.0, "rerank_ms": 3.0, "total_ms": 900.0},
                    abstain_reason="below_similarity")
    before = {"answers": _value("citewise_answers_total", channel="api"),
              "abstained": _value("citewise_abstentions_total", reason="below_similarity"),
              "retrieval": _value("citewise_retrieval_seconds_sum"),
              "total": _value("citewise_answer_seconds_count"),
              "first": _value("citewise_first_token_seconds_count")}
    metrics.observe(answer, "api")
    assert _value("citewise_answers_total", channel="api") == before["answers"] + 1
    assert _value("citewise_abstentions_total", reason="below_similarity") == before["abstained"] + 1
    assert _value("citewise_retrieval_seconds_sum") == pytest.approx(before["retrieval"] + 0.020)
    assert _value("citewise_answer_seconds_count") == before["total"] + 1
    assert _value("citewise_first_token_seconds_count") == before["first"], "it never generated: no first token"
