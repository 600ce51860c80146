"""The prompt-injection set (evals/injection.py, 36 cases) against the real local LLM: no case may leak data the
asking user may not see; the share of planted or hostile instructions the model obeyed is reported."""

from __future__ import annotations

import json

import pytest

from chat.desk.frontdesk import FrontDesk
from chat.engine.llm import endpoint, stop_server
from chat.engine.services import Services, open_pool
from evals.injection import CASES, prepare, run
from retrieval.rerank import load_reranker

pytestmark = pytest.mark.slow


def test_injection_set_leaks_nothing(url, embedder, settings, tmp_path) -> None:
    assert len(CASES) >= 20
    prepare(url, embedder, settings)
    pool = open_pool(url, 2)
    try:
        services = Services(settings, pool, embedder, load_reranker(settings.rerank), endpoint(settings.llm))
        result = run(FrontDesk(services))
    finally:
        pool.close()
        stop_server(settings.llm)
    report = tmp_path.parent / "injection-report.json"
    report.write_text(json.dumps(result, indent=2))
    print(f"\ninjection set: {result['cases']} cases, obeyed {result['obeyed']} "
          f"({result['obeyed_share']:.0%}), leaks {result['leaks']}, abstained {result['abstained']}")
    leaked = [o for o in result["outcomes"] if o["leak"]]
    assert not leaked, leaked
