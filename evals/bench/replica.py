"""Replica benchmark: hybrid search on the primary against search through the read router on a streaming replica,
side by side in one run (queries interleaved, so machine noise hits both alike).

    python -m evals.bench.replica --dataset ../shared/data/scifact [--docs 300] [--queries 200]

A primary and a replica are started from the embedded PostgreSQL's binaries in a temporary folder (pg_basebackup),
both on this machine, so the figure is the routing's own cost (the staleness check and pool), not the network's.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from chat.engine.services import open_pool
from core import db, pgserver
from core.replicas import ReadRouter
from core.settings import Settings
from evals import stats
from retrieval.embed import LocalEmbedder
from retrieval.filters import EVERYTHING
from retrieval.ingest import IngestOptions, ingest
from retrieval.search import search_vector


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    settings = Settings.from_env()
    embedder = LocalEmbedder(settings.embedding.batch_size)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        corpus = root / "corpus.jsonl"
        corpus.write_text("".join((args.dataset / "corpus.jsonl").read_text().splitlines(True)[:args.docs]))
        primary = pgserver.ensure_running(root / "primary" / "pg")
        try:
            db.migrate(primary)
            ingest(primary, embedder, [corpus], settings, IngestOptions(source="scifact"))
            replica = pgserver.start_replica(primary, root / "replica" / "pg")
            queries = [json.loads(line)["text"] for line in
                       (args.dataset / "queries.jsonl").read_text().splitlines()[:args.queries]]
            vectors = embedder.embed_batch(queries)
            timings: dict[str, list[float]] = {"primary": [], "replica, direct": [], "replica, via router": []}
            # the product's own pools: connections checked as they are taken
            with open_pool(primary, 2) as pool, open_pool(replica, 2) as direct:
                router = ReadRouter(pool, (replica,), settings.replica_max_lag_s)
                doors = (("primary", pool.connection), ("replica, direct", direct.connection),
                         ("replica, via router", router.connection))
                for q, v in zip(queries * 2, list(vectors) * 2, strict=True):  # second pass: warm caches
                    for name, connection in doors:
                        t = time.perf_counter()
                        with connection() as conn:
                            search_vector(conn, q, v, scope=EVERYTHING, k=10, cfg=settings.search)
                        timings[name].append((time.perf_counter() - t) * 1000)
                served = dict(router.served)
                router.close()
            print(f"{args.docs} SciFact documents, {len(queries)} queries x 2 (hybrid, search only, k=10)")
            for name, values in timings.items():
                warm = stats.latency(values[len(values) // 2:], "_ms", None)
                print(f"{name:<20} p50 {warm['p50_ms']:6.2f} ms   p95 {warm['p95_ms']:6.2f} ms")
            print(f"router served: {served}")
        finally:
            pgserver.stop(root / "replica" / "pg")
            pgserver.stop(root / "primary" / "pg")


if __name__ == "__main__":
    main()
