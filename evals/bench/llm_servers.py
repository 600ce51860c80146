"""Answers per minute and time to first token at N concurrent requests against any OpenAI-compatible server:
today's llama-cpp-python server against llama.cpp's own llama-server with parallel slots, side by side in one
sitting (evals/results/2026-12-07-llama-server.md).

    python -m evals.bench.llm_servers URL CONCURRENCY ANSWERS [OFFSET]

Each request is the product's answer prompt (prompts/system.md, prompts/answer.md) over three XQuAD dev passages,
80 tokens at most, temperature 0.1. OFFSET shifts the passages so that a run never repeats an earlier run's prompts
(a server's prompt cache would otherwise answer them early).
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from pathlib import Path

from openai import OpenAI

ROOT = Path(__file__).resolve().parents[2]
XQUAD = ROOT.parent / "shared" / "data" / "xquad" / "xquad.en.dev.json"


def prompts(n: int, offset: int) -> list[str]:
    """``n`` answer prompts of three passages each, from the first XQuAD dev articles."""
    data = json.loads(XQUAD.read_text())
    paras = [p for a in data["data"][:12] for p in a["paragraphs"]]
    template = (ROOT / "prompts" / "answer.md").read_text()
    out = []
    for i in range(offset, offset + n):
        ps = paras[i * 3:i * 3 + 3]
        sources = "\n\n".join(f"[{k + 1}] {p['context']}" for k, p in enumerate(ps))
        out.append(template.replace("{sources}", sources).replace("{question}", ps[0]["qas"][0]["question"]))
    return out


def _p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def run(url: str, concurrency: int, answers: int, offset: int = 0) -> dict:
    """Send ``answers`` prompts, ``concurrency`` at a time; the figures of the run."""
    client = OpenAI(base_url=url, api_key="unused", timeout=600)
    system = (ROOT / "prompts" / "system.md").read_text()
    jobs = iter(prompts(answers, offset))
    lock = threading.Lock()
    results: list[tuple[float, float]] = []

    def one(prompt: str) -> None:
        started, first = time.perf_counter(), None
        stream = client.chat.completions.create(
            model="citewise", messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            stream=True, temperature=0.1, max_tokens=80, seed=7)
        for chunk in stream:
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - started
        with lock:
            results.append((first if first is not None else float("nan"), time.perf_counter() - started))

    def worker() -> None:
        while True:
            with lock:
                prompt = next(jobs, None)
            if prompt is None:
                return
            one(prompt)

    started = time.perf_counter()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    firsts, totals = [r[0] for r in results], [r[1] for r in results]
    return {"url": url, "concurrency": concurrency, "answers": answers, "wall_s": round(wall, 1),
            "answers_per_min": round(answers / wall * 60, 2),
            "first_token_p50_s": round(statistics.median(firsts), 2), "first_token_p95_s": round(_p95(firsts), 2),
            "total_p50_s": round(statistics.median(totals), 2), "total_p95_s": round(_p95(totals), 2)}


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(run(args[0], int(args[1]), int(args[2]), int(args[3]) if len(args) > 3 else 0)))
