"""Every HTTP route fuzzed from the served OpenAPI document (schemathesis), against a running `citewise serve`
with the demo corpus and a stand-in LLM speaking the OpenAI protocol.

Each generated request, valid for its schema or deliberately not, is sent with the caller's token and without
one. Target: no 5xx, every response's status, content type, headers and body as the document declares, invalid
requests rejected, nothing hangs (a request over the timeout fails the run). Seeded, so a failure replays.
"""

from __future__ import annotations

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.helpers.serving import serve
from tests.helpers.standin_llm import StandIn, grounded_reply

TOKEN = "fuzz-token-0123456789abcdef"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]
EXAMPLES = 200  # per route and mode; each example is sent twice (with and without the token)
TIMEOUT_S = 30


@pytest.fixture(scope="module")
def base(demo_db, tmp_path_factory):
    with StandIn(grounded_reply) as llm, serve(tmp_path_factory.mktemp("fuzz-home"), {
        "CITEWISE_DATABASE_URL": demo_db, "CITEWISE_LLM_BASE_URL": llm.base_url, "CITEWISE_LLM_MODEL": "standin",
        "CITEWISE_LLM_API_KEY": "x", "CITEWISE_API_TOKENS": f"fuzzer:{TOKEN}",
        "CITEWISE_MAX_QUEUED_ANSWERS": "64",
    }) as url:
        yield url


def fuzz_operation(op, mode: GenerationMode, base: str, session: requests.Session, sent: dict[str, int],
                   statuses: dict[int, int]) -> None:
    """Send ``EXAMPLES`` generated requests for one route and mode, each with and without the token, checked."""
    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def fuzz(case) -> None:
        for headers in ({"Authorization": f"Bearer {TOKEN}"}, {}):
            response = case.call(base_url=base, session=session, headers=headers, timeout=TIMEOUT_S)
            case.validate_response(response, checks=CHECKS, headers=headers)
            sent[op.label] = sent.get(op.label, 0) + 1
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    fuzz()


@pytest.mark.slow
def test_every_route_holds_to_its_schema_under_generated_requests(base) -> None:
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    operations = [op.ok() for op in schema.get_all_operations()]
    paths = {f"{op.method.upper()} {op.path}" for op in operations}
    assert {"POST /v1/ask", "POST /v1/feedback", "GET /v1/health", "GET /v1/models",
            "POST /v1/chat/completions"} <= paths, paths
    sent: dict[str, int] = {}
    statuses: dict[int, int] = {}
    session = requests.Session()

    for op in operations:
        takes_input = any(len(part) for part in (op.path_parameters, op.query, op.headers, op.body))
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if takes_input else (GenerationMode.POSITIVE,):
            fuzz_operation(op, mode, base, session, sent, statuses)
    total = sum(sent.values())
    print(f"\nfuzzed {total} requests: {sent}; statuses {dict(sorted(statuses.items()))}")
    assert total >= 2000, sent
    assert not any(s >= 500 and s != 503 for s in statuses), statuses
    assert statuses.get(200, 0) >= 100 and statuses.get(401, 0) >= 500 and statuses.get(422, 0) >= 100, statuses
    assert httpx.get(f"{base}/v1/health", timeout=10).status_code == 200, "the server still answers after the run"
