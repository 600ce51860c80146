"""A bounded load test against a running citewise server on loopback, with locust (``evals/bench/locustfile.py``):
N users ask over the HTTP API and post feedback for a fixed time; prints p50/p95 latency, throughput, errors and
refusals, and checks that every feedback acknowledged is in the database.

    citewise serve &          # the server under test, on its own LLM (or CITEWISE_LLM_BASE_URL)
    python -m evals.bench.load --base http://127.0.0.1:8000 --database-url postgresql://... --users 4 --duration 600

The test suite runs the same load against a server of its own with a stand-in LLM (tests/helpers/serving.py).

A refusal (503 with Retry-After) is the server protecting itself and is reported apart from errors; a request
without an answer or a refusal within ``--request-timeout`` is an error (a hang).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def _percentile(times: dict[str, int], q: float) -> float | None:
    """The q-th percentile of locust's response-time histogram ({rounded ms: count})."""
    points = sorted((float(ms), n) for ms, n in times.items())
    total = sum(n for _, n in points)
    if not total:
        return None
    seen = 0
    for ms, n in points:
        seen += n
        if seen >= total * q / 100:
            return round(ms, 1)
    return round(points[-1][0], 1)


def run(base: str, users: int, duration: float, timeout: float, token: str | None = None) -> dict:
    """Run ``evals/locustfile.py`` headless against ``base`` for ``duration`` seconds (locust, in a process of
    its own: it patches the standard library with gevent) and summarise its statistics."""
    with tempfile.TemporaryDirectory(prefix="citewise-locust-") as tmp:
        env = {**os.environ, "CITEWISE_LOAD_OUT": tmp, "CITEWISE_LOAD_TIMEOUT": str(timeout),
               **({"CITEWISE_LOAD_TOKEN": token} if token else {})}
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--skip-log", "--json",
             "-u", str(users), "-r", str(users), "-t", f"{int(duration)}s", "--stop-timeout", str(int(timeout)),
             "--host", base, "--exit-code-on-error", "0"],
            env=env, capture_output=True, text=True, timeout=duration + timeout + 120)
        elapsed = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError(f"locust failed ({proc.returncode}): {proc.stderr[-2000:]}")
        stats = {s["name"]: s for s in json.loads(proc.stdout)}
        ids = [int(x) for x in _lines(Path(tmp) / "feedback_ids")]
        failed = _lines(Path(tmp) / "failures")
    ask, refused, down, feedback = (stats.get(n, {}) for n in ("ask", "ask: refused", "ask: database unavailable",
                                                               "feedback"))
    failures = sum(s.get("num_failures", 0) for s in stats.values())
    answered = ask.get("num_requests", 0) - ask.get("num_failures", 0)
    return {"tool": "locust", "users": users, "duration_s": round(elapsed, 1),
            "requests": sum(s.get("num_requests", 0) for s in stats.values()),
            "answered": answered, "throughput_per_s": round(answered / max(duration, 1e-9), 2),
            "p50_ms": _percentile(ask.get("response_times", {}), 50),
            "p95_ms": _percentile(ask.get("response_times", {}), 95),
            "refused_503": refused.get("num_requests", 0) - refused.get("num_failures", 0),
            "database_unavailable_503": down.get("num_requests", 0) - down.get("num_failures", 0),
            "refusals_without_retry_after": refused.get("num_failures", 0) + down.get("num_failures", 0),
            "errors": failures, "error_samples": failed[:5], "failures": failed,
            "feedback_p50_ms": _percentile(feedback.get("response_times", {}), 50),
            "feedback_posted": len(ids), "feedback_ids": ids}


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def check_feedback(database_url: str, ids: list[int]) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM feedback WHERE id = ANY(%s)", (ids,)).fetchone()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the server's base URL")
    parser.add_argument("--database-url")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--request-timeout", type=float, default=180)
    args = parser.parse_args()
    result = run_and_check(args.base, args.database_url, args)
    result.pop("feedback_ids")
    result.pop("failures")
    print(json.dumps(result, indent=2))


def run_and_check(base: str, url: str | None, args) -> dict:
    result = run(base, args.users, args.duration, args.request_timeout)
    if url:
        found = check_feedback(url, result["feedback_ids"])
        result["feedback_in_database"] = found
        result["feedback_missing"] = result["feedback_posted"] - found
    return result


if __name__ == "__main__":
    main()
