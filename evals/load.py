"""A bounded load test against a running citewise server on loopback: N users ask over the HTTP API and post
feedback for a fixed time; prints p50/p95 latency, throughput, errors and refusals, and checks that every feedback
posted is in the database.

    python -m evals.load --users 20 --duration 60                 # starts its own server with a fast stand-in LLM
    python -m evals.load --users 4 --duration 60 --real-llm       # the same with the local LLM
    python -m evals.load --base http://127.0.0.1:8000 --database-url postgresql://...   # an existing server

A refusal (503/429 with Retry-After) is the server protecting itself and is reported apart from errors; a request
without an answer or a refusal within ``--request-timeout`` is an error (a hang).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg

from evals.stats import percentile

QUESTIONS = ["How do I filter search results by date?", "Which file types can I ingest?",
             "What happens when an ingest is interrupted?", "How do I log in to the web UI?",
             "How do I change the sampling temperature?", "What does the settings panel hold?",
             "How are citations shown?", "How do I configure Slack?", "What is the OpenAI-compatible endpoint?",
             "How does citewise decide to abstain?"]


async def user(client: httpx.AsyncClient, base: str, until: float, seed: int, stats: dict, timeout: float) -> None:
    rng = random.Random(seed)
    while time.monotonic() < until and stats["requests"] < stats["max_requests"]:
        stats["requests"] += 1
        t = time.perf_counter()
        try:
            r = await client.post(f"{base}/v1/ask", json={"question": rng.choice(QUESTIONS)}, timeout=timeout)
        except httpx.HTTPError as exc:
            stats["errors"].append(f"ask: {type(exc).__name__}")
            continue
        if r.status_code in (429, 503):
            stats["refused"] += 1
            stats["retry_after_missing"] += "retry-after" not in r.headers
            await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), 2.0) * rng.random())
            continue
        if r.status_code != 200:
            stats["errors"].append(f"ask: HTTP {r.status_code} {r.text[:80]}")
            continue
        stats["latencies"].append((time.perf_counter() - t) * 1000)
        turn = r.json()["turn_id"]
        if rng.random() < 0.5:
            f = await client.post(f"{base}/v1/feedback", json={"turn_id": turn, "value": rng.choice(["up", "down"]),
                                                               "comment": f"load {seed}"}, timeout=timeout)
            if f.status_code == 200:
                stats["feedback_ids"].append(f.json()["feedback_id"])
            else:
                stats["errors"].append(f"feedback: HTTP {f.status_code}")


async def run(base: str, users: int, duration: float, max_requests: int, timeout: float) -> dict:
    stats = {"requests": 0, "max_requests": max_requests, "refused": 0, "retry_after_missing": 0, "errors": [],
             "latencies": [], "feedback_ids": []}
    started = time.monotonic()
    limits = httpx.Limits(max_connections=users + 4)
    async with httpx.AsyncClient(limits=limits) as client:
        await asyncio.gather(*(user(client, base, started + duration, i, stats, timeout) for i in range(users)))
    elapsed = time.monotonic() - started
    lat = sorted(stats["latencies"])
    return {"users": users, "duration_s": round(elapsed, 1), "requests": stats["requests"],
            "answered": len(lat), "throughput_per_s": round(len(lat) / elapsed, 2),
            "p50_ms": round(percentile(lat, 50), 1) if lat else None,
            "p95_ms": round(percentile(lat, 95), 1) if lat else None,
            "refused_503_429": stats["refused"], "refusals_without_retry_after": stats["retry_after_missing"],
            "errors": len(stats["errors"]), "error_samples": stats["errors"][:5],
            "feedback_posted": len(stats["feedback_ids"]), "feedback_ids": stats["feedback_ids"]}


def check_feedback(database_url: str, ids: list[int]) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM feedback WHERE id = ANY(%s)", (ids,)).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base")
    parser.add_argument("--database-url")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--max-requests", type=int, default=20_000)
    parser.add_argument("--request-timeout", type=float, default=180)
    parser.add_argument("--real-llm", action="store_true", help="with --base unset: use the local LLM")
    parser.add_argument("--concurrent", type=int, default=None, help="CITEWISE_MAX_CONCURRENT_ANSWERS for the server")
    args = parser.parse_args()
    with ExitStack() as stack:
        base, url = args.base, args.database_url
        if base is None:
            base, url = stack.enter_context(_own_server(args.real_llm, args.concurrent))
        result = run_and_check(base, url, args)
    result.pop("feedback_ids")
    print(json.dumps(result, indent=2))


def run_and_check(base: str, url: str | None, args) -> dict:
    result = asyncio.run(run(base, args.users, args.duration, args.max_requests, args.request_timeout))
    if url:
        found = check_feedback(url, result["feedback_ids"])
        result["feedback_in_database"] = found
        result["feedback_missing"] = result["feedback_posted"] - found
    return result


def _own_server(real_llm: bool, concurrent: int | None):
    """A server on the demo corpus in a throw-away home (and database), with a stand-in or the local LLM."""
    from contextlib import contextmanager

    @contextmanager
    def cm():
        import subprocess
        import sys

        from evals.serving import ROOT, serve
        from evals.standin_llm import StandIn, grounded_reply

        home = Path(tempfile.mkdtemp(prefix="citewise-load-"))
        env = {"CITEWISE_HOME": str(home)}
        if concurrent:
            env["CITEWISE_MAX_CONCURRENT_ANSWERS"] = str(concurrent)
        subprocess.run([sys.executable, "-m", "citewise.cli", "ingest", str(ROOT / "docs"), "--source", "handbook"],
                       env={**__import__("os").environ, **env}, check=True, capture_output=True)
        from core import db
        from core.settings import Settings

        url = db.database_url(Settings.from_env({"CITEWISE_HOME": str(home)}))
        with ExitStack() as inner:
            if not real_llm:
                llm = inner.enter_context(StandIn(grounded_reply, delay_s=0.002))
                env.update(CITEWISE_LLM_BASE_URL=llm.base_url, CITEWISE_LLM_MODEL="standin",
                           CITEWISE_LLM_API_KEY="x")
            else:  # the user's own local LLM server (started or reused in their CITEWISE_HOME)
                from chat.llm import endpoint

                local = endpoint(Settings.from_env().llm)
                env.update(CITEWISE_LLM_BASE_URL=local.base_url, CITEWISE_LLM_MODEL=local.model or "local",
                           CITEWISE_LLM_API_KEY=local.api_key or "x")
                env.setdefault("CITEWISE_MAX_CONCURRENT_ANSWERS", "1")  # what serve uses with its own local LLM
            base = inner.enter_context(serve(home, env))
            yield base, url
        from core import pgserver

        pgserver.stop(home / "pg")

    return cm()


if __name__ == "__main__":
    main()
