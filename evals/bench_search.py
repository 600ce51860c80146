"""Search benchmark: p50/p95 latency of hybrid and filtered search, with and without the query embedding, at
SciFact size and at a large synthetic size; HNSW recall@10 against exact search at the chosen ef_search.

    OPENBLAS_NUM_THREADS=1 python -m evals.bench_search --dataset ../shared/data/scifact [--scale 200000]

The large index is built from the SciFact chunks: each copy keeps the chunk's text and jitters its real
embedding, so neighbourhoods stay structured (random vectors have none and would make recall meaningless).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from core import db
from core.settings import SearchSettings, Settings
from evals import stats
from evals.isolated import isolated_database
from evals.retrieval import prepare
from retrieval import filters, store
from retrieval.embed import LocalEmbedder
from retrieval.filters import EVERYTHING
from retrieval.search import search_vector
from retrieval.store import PreparedDocument
from retrieval.types import Chunk, Document


def _latencies(url: str, embedder, queries: list[str], cfg: SearchSettings, exprs: list[str]) -> dict:
    parsed = filters.parse_all(exprs)
    with_embed, without = [], []
    with db.connect(url) as conn:
        for q in queries:
            t0 = time.perf_counter()
            vec = embedder.embed_batch([q])[0]
            t1 = time.perf_counter()
            search_vector(conn, q, vec, scope=EVERYTHING, k=10, filters=parsed, cfg=cfg)
            t2 = time.perf_counter()
            with_embed.append((t2 - t0) * 1000)
            without.append((t2 - t1) * 1000)
    return {"with_embedding": stats.latency(with_embed, "_ms", None),
            "search_only": stats.latency(without, "_ms", None)}


def _recall(url: str, vectors: np.ndarray, queries: list[str], cfg: SearchSettings) -> float:
    hits = []
    with db.connect(url) as conn:
        for q, v in zip(queries, vectors, strict=True):
            kw = {"scope": EVERYTHING, "k": 10, "mode": "vector", "cfg": cfg}
            approx = {h.chunk_id for h in search_vector(conn, q, v, **kw)}  # type: ignore[arg-type]
            exact = {h.chunk_id for h in search_vector(conn, q, v, exact=True, **kw)}  # type: ignore[arg-type]
            hits.append(len(approx & exact) / 10)
    return statistics.fmean(hits)


def _scale_up(base_url: str, source_url: str, target: int, search: SearchSettings) -> tuple[str, float]:
    """Copy the SciFact chunks with jittered embeddings until ``target`` chunks; return URL and index build s."""
    url = isolated_database(base_url, "citewise_bench_scale", fresh=True)
    with db.connect(source_url) as src:
        rows = src.execute("SELECT d.title, c.text, c.embedding, c.token_count FROM chunks c "
                           "JOIN documents d ON d.id = c.document_id ORDER BY c.id").fetchall()
    base = np.array([r[2].to_numpy() for r in rows], dtype=np.float32)
    rng = np.random.default_rng(0)
    with db.connect(url, autocommit=True) as conn:
        store.ensure_model(conn, "all-MiniLM-L6-v2", base.shape[1])
        conn.execute("DROP INDEX chunks_embedding_hnsw")
        avgdl = 60.0
        batch: list[PreparedDocument] = []
        vecs: list[np.ndarray] = []
        for i in range(target):
            title, text, _, tokens = rows[i % len(rows)]
            copy = i // len(rows)
            d = Document(source=f"shard{copy % 10}", uri=f"c{i}", text=text, title=title,
                         metadata={"bucket": str(i % 100)})
            batch.append(PreparedDocument(d, [Chunk(d.id, 0, text, tokens, 0, len(text))], {}))
            v = base[i % len(rows)] + (rng.normal(0, 0.02, base.shape[1]) if copy else 0)
            vecs.append(v / np.linalg.norm(v))
            if len(batch) == 5000:
                store.write(conn, batch, np.array(vecs, dtype=np.float32), search, avgdl)
                batch, vecs = [], []
        if batch:
            store.write(conn, batch, np.array(vecs, dtype=np.float32), search, avgdl)
        conn.execute("SET maintenance_work_mem = '1GB'")
        t = time.perf_counter()
        conn.execute("CREATE INDEX chunks_embedding_hnsw ON chunks USING hnsw (embedding halfvec_cosine_ops) "
                     "WITH (m = 16, ef_construction = 64)")
        build_s = time.perf_counter() - t
        conn.execute("ANALYZE")
    return url, build_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--scale", type=int, default=200_000, help="chunks in the large index (0 to skip)")
    args = parser.parse_args()
    settings = Settings.from_env()
    cfg = settings.search
    embedder = LocalEmbedder()
    url, data = prepare(settings, embedder, args.dataset, "train")
    queries = list(data.queries.values())[: args.queries]
    vectors = embedder.embed_batch(queries)
    with db.connect(url) as conn:
        n_chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    out: dict = {"ef_search": cfg.ef_search, "candidates": cfg.candidates, "queries": len(queries)}
    out["scifact"] = {
        "chunks": n_chunks,
        "hybrid": _latencies(url, embedder, queries, cfg, []),
        "hybrid_filtered": _latencies(url, embedder, queries, cfg, ["uri in " + ",".join(
            list({d for rel in data.qrels.values() for d in rel})[:500])]),
        "hnsw_recall_at_10": _recall(url, vectors, queries, cfg),
    }
    if args.scale:
        big, build_s = _scale_up(db.database_url(settings), url, args.scale, cfg)
        out["large"] = {
            "chunks": args.scale, "hnsw_build_s": build_s,
            "hybrid": _latencies(big, embedder, queries, cfg, []),
            "hybrid_filtered_source": _latencies(big, embedder, queries, cfg, ["source=shard3"]),
            "hybrid_filtered_1pct": _latencies(big, embedder, queries, cfg, ["meta.bucket=7"]),
            "hnsw_recall_at_10": _recall(big, vectors, queries, cfg),
        }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
