"""A bounded load test against a running citewise server on loopback, with locust (``evals/locustfile.py``):
N users ask over the HTTP API and post feedback for a fixed time; prints p50/p95 latency, throughput, errors and
refusals, and checks that every feedback acknowledged is in the database.

    python -m evals.load --users 20 --duration 60                 # starts its own server with a fast stand-in LLM
    python -m evals.load --users 4 --duration 60 --real-llm       # the same with the local LLM
    python -m evals.load --base http://127.0.0.1:8000 --database-url postgresql://...   # an existing server

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
from contextlib import ExitStack
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
    parser.add_argument("--base")
    parser.add_argument("--database-url")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--request-timeout", type=float, default=180)
    parser.add_argument("--real-llm", action="store_true", help="with --base unset: use the local LLM")
    parser.add_argument("--concurrent", type=int, default=None, help="CITEWISE_MAX_CONCURRENT_ANSWERS for the server")
    args = parser.parse_args()
    with ExitStack() as stack:
        base, url = args.base, args.database_url
        if base is None:
            base, url, _ = stack.enter_context(own_server(args.real_llm, args.concurrent))
        result = run_and_check(base, url, args)
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


def own_server(real_llm: bool = False, concurrent: int | None = None, home: Path | None = None):
    """A server on the demo corpus in a throw-away home (and its own embedded database), with a stand-in or the
    local LLM; yields (base URL, database URL, home)."""
    from contextlib import contextmanager

    @contextmanager
    def cm():
        import subprocess
        import sys

        from evals.serving import ROOT, serve
        from evals.standin_llm import StandIn, grounded_reply

        where = home or Path(tempfile.mkdtemp(prefix="citewise-load-"))
        env = {"CITEWISE_HOME": str(where)}
        if concurrent:
            env["CITEWISE_MAX_CONCURRENT_ANSWERS"] = str(concurrent)
        subprocess.run([sys.executable, "-m", "citewise.cli", "ingest", str(ROOT / "docs"), "--source", "handbook"],
                       env={**os.environ, **env}, check=True, capture_output=True)
        from core import db
        from core.settings import Settings

        url = db.database_url(Settings.from_env({"CITEWISE_HOME": str(where)}))
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
            base = inner.enter_context(serve(where, env))
            yield base, url, where
        from core import pgserver

        pgserver.stop(where / "pg")

    return cm()


if __name__ == "__main__":
    main()
