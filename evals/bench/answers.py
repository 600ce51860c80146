"""Answer latency, old and new side by side in one run: time to first token, to the first verified sentence (what
the user first sees) and to the whole answer, p50/p95, over the same XQuAD questions; then what the local
llama.cpp server itself does with a prompt: whether it reuses the fixed system prompt between requests, and how
its threads and batch size move the time to the first token.

    OPENBLAS_NUM_THREADS=1 python -m evals.bench.answers --dataset ../shared/data/xquad/xquad.en.dev.json [--n 30]

Configurations, each over the same questions, one block after another (interleaving them would evict each
other's system prompt from the server's cache, which no deployment does):
- ``old``: the first round's path: five whole chunks within 1,200 tokens, its prompts;
- ``new``: the default: sentence-level evidence from three passages within 320 tokens, the short-answer prompt;
- ``new-600``: the same at a 600-token budget, for the curve.
Memory is the peak resident set of each process of the stack.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

from chat.desk.frontdesk import AskRequest, FrontDesk
from chat.engine.context import build_context
from chat.engine.llm import MODEL_ALIAS, assemble_model, server_command
from chat.engine.retrieve import retrieve
from chat.engine.services import Services, open_services
from chat.sampling import preset
from core import db
from core.settings import Settings
from evals import halves, stats
from evals.calibrate import prepare_squad
from retrieval.filters import EVERYTHING

OLD = {"evidence": "chunks", "context_tokens": 1200, "sources": 5, "prompt": "answer-v1", "system_prompt": "system-v1",
       "min_similarity": 0.30}


def _peak_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def variants(settings: Settings) -> dict[str, Settings]:
    old = replace(settings, answer=replace(settings.answer, **OLD),
                  verify=replace(settings.verify, min_anchor=0.0))
    return {"old": old, "new": settings,
            "new-600": replace(settings, answer=replace(settings.answer, context_tokens=600))}


def answer_block(services: Services, questions: list[str], warm: str, seed: int) -> dict:
    """Ask every question through the front desk; latency per stage as the user feels it. ``warm`` is asked first,
    untimed, so the server holds this configuration's system prompt as a running server would."""
    desk = FrontDesk(services)
    stages: dict[str, list[float]] = {}
    prompt_tokens, abstained = [], 0
    desk.ask(AskRequest(text=warm, channel="eval", user_id=None, conversation_id=str(uuid.uuid4()), operator=True,
                        seed=seed))
    for q in questions:
        answer = desk.ask(AskRequest(text=q, channel="eval", user_id=None, conversation_id=str(uuid.uuid4()),
                                     operator=True, seed=seed))
        lat = answer.latency
        before = sum(lat.get(k, 0.0) for k in ("condense_ms", "embed_ms", "search_ms", "rerank_ms"))
        for key in ("first_token_ms", "first_verified_ms"):  # counted from the question, as the user waits
            if key in lat:
                stages.setdefault(key, []).append(before + lat[key])
        stages.setdefault("total_ms", []).append(lat["total_ms"])
        if answer.prompt_tokens:
            prompt_tokens.append(answer.prompt_tokens)
        abstained += answer.abstained
    return {"latency_ms": {k: stats.latency(v) for k, v in stages.items()},
            "prompt_tokens": stats.latency(prompt_tokens), "abstained": abstained, "questions": len(questions)}


def prompts_of(services: Services, questions: list[str]) -> list[tuple[str, str]]:
    """(system, prompt) pairs as the chain builds them, to send to servers directly."""
    cfg = services.settings
    sampling = preset(cfg.answer.preset)
    out = []
    for q in questions:
        found = retrieve(services, q, EVERYTHING, [], cfg.answer.sources)
        ctx = build_context(found, sampling, cfg.answer.sources, cfg.answer, cfg.llm.n_ctx)
        if ctx.prompt:
            out.append((ctx.system, ctx.prompt))
    return out


def ttft(base_url: str, system: str, prompt: str) -> float:
    """Milliseconds to the first streamed token of one chat completion (greedy, a few tokens)."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key="none", max_retries=0, timeout=300)
    t = time.perf_counter()
    stream = client.chat.completions.create(model=MODEL_ALIAS, messages=[{"role": "system", "content": system},
                                                                 {"role": "user", "content": prompt}],
                                            max_tokens=4, temperature=0, stream=True)
    first = None
    for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = (time.perf_counter() - t) * 1000
    return first if first is not None else (time.perf_counter() - t) * 1000


def serve(settings: Settings, threads: int, batch: int) -> tuple[subprocess.Popen, str]:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = replace(settings.llm, threads=threads, batch=batch)
    proc = subprocess.Popen(server_command(cfg, assemble_model(cfg.models_dir), "127.0.0.1", port),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(240):
        try:
            urllib.request.urlopen(url + "/models", timeout=1).read()
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("the benchmark's llama.cpp server did not start")


def server_checks(settings: Settings, pairs: list[tuple[str, str]]) -> dict:
    """Prefix reuse (the same system prompt vs one changed at its first word), then threads x batch size."""
    out: dict = {}
    proc, url = serve(settings, settings.llm.threads, settings.llm.batch)
    try:
        ttft(url, *pairs[0])
        reused, changed = [], []
        for system, prompt in pairs[1:]:
            reused.append(ttft(url, system, prompt))
            changed.append(ttft(url, f"Note: {system}", prompt))  # no common prefix with the request before
            ttft(url, system, pairs[0][1])  # put the real system prompt back in the cache
        out["system_prefix"] = {"reused_ms": stats.latency(reused), "changed_ms": stats.latency(changed)}
    finally:
        proc.kill()
        proc.wait()
    grid = {}
    for threads in sorted({1, settings.llm.threads}):
        for batch in (64, 512):
            proc, url = serve(settings, threads, batch)
            try:
                ttft(url, *pairs[0])
                grid[f"threads={threads} batch={batch}"] = stats.latency([ttft(url, s, p) for s, p in pairs[1:]])
            finally:
                proc.kill()
                proc.wait()
    out["threads_x_batch_ttft_ms"] = grid
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--n", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-server", action="store_true", help="Skip the prefix and threads x batch checks.")
    args = parser.parse_args()
    settings = Settings.from_env()
    services = open_services(settings)
    url, qas = prepare_squad(settings, services.embedder, args.dataset)
    services.close()
    settings = settings.with_database(url)
    services = open_services(settings)
    pool = [qa for qa in qas if halves.keep(qa.article, "report")]
    *questions, warm = [qa.question for qa in random.Random(args.seed).sample(pool, args.n + 1)]
    result: dict = {"questions": args.n, "model": services.llm.model, "database": db.mask_url(url), "configs": {}}
    for name, variant in variants(settings).items():
        result["configs"][name] = answer_block(replace(services, settings=variant), questions, warm, args.seed)
        print(f"{name}: {json.dumps(result['configs'][name]['latency_ms'])}", file=sys.stderr)
    if not settings.llm.base_url and not args.skip_server:
        result["server"] = server_checks(settings, prompts_of(services, questions[:12]))
    state = json.loads((settings.llm.state_dir / "server.json").read_text()) if not settings.llm.base_url else {}
    result["peak_rss_mb"] = {"chain_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                             "llm_server": round(_peak_kb(state.get("pid", 0)) / 1024) if state else None}
    services.close()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
