"""Answer benchmark with the local LLM: p50/p95 of each stage over N XQuAD questions, tokens/s, peak memory.

    OPENBLAS_NUM_THREADS=1 python -m evals.bench_answers --dataset ../shared/data/xquad/xquad.en.dev.json [--n 50]

Memory is the peak resident set of each process of the stack (this process: embedder + chain; the llama.cpp
server; PostgreSQL's processes summed, which counts shared buffers once per process and so over-states it).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import uuid
from pathlib import Path

from chat.frontdesk import FrontDesk, Request
from chat.services import open_services
from core import db
from core.settings import Settings
from evals import stats
from evals.calibrate import prepare_squad


def _peak_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _postgres_kb() -> int:
    total = 0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if cmd.endswith(b"/postgres") or cmd.startswith(b"postgres:"):
                total += _peak_kb(int(proc.name))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--n", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    settings = Settings.from_env()
    services = open_services(settings)
    url, qas = prepare_squad(settings, services.embedder, args.dataset)
    services.close()
    services = open_services(settings.with_database(url))
    sample = random.Random(args.seed).sample(qas, args.n)
    stages: dict[str, list[float]] = {}
    rates, abstained, cited, gold_cited = [], 0, 0, 0
    desk = FrontDesk(services)
    for qa in sample:
        answer = desk.ask(Request(qa.question, "eval", None, str(uuid.uuid4()), operator=True))
        for key, value in answer.latency.items():
            stages.setdefault(key, []).append(value)
        gen_ms = answer.latency.get("total_ms", 0) - answer.latency.get("first_token_ms", 0)
        if answer.completion_tokens and "first_token_ms" in answer.latency and gen_ms > 0:
            rates.append(answer.completion_tokens / (gen_ms / 1000))
        abstained += answer.abstained
        cited += bool(answer.citations)
        gold_cited += any(c.uri == qa.paragraph_id for c in answer.citations)
    state = json.loads((settings.llm.state_dir / "server.json").read_text()) if not settings.llm.base_url else {}
    result = {
        "questions": len(sample),
        "latency_ms": {k: stats.latency(v) for k, v in stages.items() if k.endswith("_ms")},
        "tokens_per_s": stats.latency(rates),
        "abstained": abstained, "answers_with_citations": cited, "gold_paragraph_cited": gold_cited,
        "peak_rss_mb": {
            "chain_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "llm_server": round(_peak_kb(state.get("pid", 0)) / 1024) if state else None,
            "postgres_processes_summed": round(_postgres_kb() / 1024),
        },
        "model": services.llm.model, "context_tokens": settings.answer.context_tokens,
        "database": db.mask_url(url),
    }
    services.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
