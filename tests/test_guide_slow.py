"""The user guide asked as a new user asks it, through the whole chain with the real local LLM (issue 13): every
question of evals/data/guide_questions.jsonl, scored on what the user was streamed, held to the floors in
evals/thresholds.toml's [guide] section (two items below the figures measured on 2026-12-05)."""

from __future__ import annotations

import tomllib

import pytest

from chat.engine.llm import endpoint, stop_server
from chat.engine.services import Services, open_pool
from evals import guide
from evals.support import THRESHOLDS
from retrieval.rerank import load_reranker

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def services(demo_db, embedder, settings):
    llm = endpoint(settings.llm)
    pool = open_pool(demo_db, 2)
    yield Services(settings, pool, embedder, load_reranker(settings.rerank), llm)
    pool.close()
    stop_server(settings.llm)


def test_the_user_guide_is_answered_and_what_it_does_not_say_is_refused(services) -> None:
    result = guide.run(services, guide.load(), seed=0)
    assert result.failures == 0 and result.streamed_differs == 0, result.rows
    floors = tomllib.loads(THRESHOLDS.read_text())["guide"]
    for name, limit in floors.items():
        if name.startswith("max_"):
            value = getattr(result, name[4:])
            assert value <= limit, f"{name[4:]} {value} > {limit}: {result.rows}"
        else:
            value = getattr(result, name)
            assert value is not None and value >= limit, f"{name} {value} < {limit}: {result.rows}"
