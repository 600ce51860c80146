"""Query embedding cache benchmark: the model against a cache hit, side by side in one run.

    python -m evals.bench.query_cache --dataset ../shared/data/scifact [--queries 200]

The SciFact queries are embedded once through the model (misses) and again (hits), one at a time as a server
embeds them; p50/p95 of each.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from evals import stats
from retrieval.embed import CachedQueries, LocalEmbedder, embed_query


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    queries = [json.loads(line)["text"] for line in
               (args.dataset / "queries.jsonl").read_text().splitlines()[:args.queries]]
    embedder = CachedQueries(LocalEmbedder())
    embedder.embed_batch(queries[:8])  # warm-up, not cached
    timings: dict[str, list[float]] = {"model (miss)": [], "cache hit": []}
    for name in timings:
        for q in queries:
            t = time.perf_counter()
            embed_query(embedder, q)
            timings[name].append((time.perf_counter() - t) * 1000)
    print(f"{len(queries)} SciFact queries, one at a time")
    for name, values in timings.items():
        s = stats.latency(values, "_ms", 4)
        print(f"{name:<14} p50 {s['p50_ms']:9.4f} ms   p95 {s['p95_ms']:9.4f} ms")


if __name__ == "__main__":
    main()
