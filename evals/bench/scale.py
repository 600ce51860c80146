"""Search at scale: how latency, recall, build time, size and memory grow from SciFact's 11k chunks to a million.
(It replaces the earlier bench_search, which measured SciFact and one 200k index.)

    OPENBLAS_NUM_THREADS=1 python -m evals.bench.scale --dataset ../shared/data/scifact --sizes 200000,1000000

**How the synthetic corpus is made.** Every synthetic chunk starts from a real SciFact chunk (text, title, BM25
terms) and gets a real-looking embedding: a blend of its own chunk's MiniLM vector (weight 0.75) and another
random real chunk's (0.25), plus Gaussian jitter (σ 0.01 per dimension), normalised. The vectors stay on the
manifold real embeddings occupy, so neighbourhoods are structured the way real ones are; random vectors have no
neighbourhoods (every point is about equally far) and would make HNSW look worse than it is; plain jittered copies
would make clusters of near-duplicates that no real corpus has. Ten chunks make a document; documents carry the
fields the filters select on: ``source`` shard0..9 (10% each), ``meta.bucket`` 0..99 (1%), ``meta.cell`` 0..999
(0.1%). Queries are SciFact train queries, embedded by the real model.

The old statement (filters joined through a materialised list of allowed document ids) and the new one (filters
tested on the chunk rows' copied columns) run side by side on the same database, query by query.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psutil
import psycopg
from pgvector import HalfVector
from psycopg import sql
from psycopg.types.json import Jsonb

from core import db
from core.settings import SearchSettings, Settings
from evals import beir, stats
from evals.ir_metrics import dedupe, ndcg_at
from evals.isolated import isolated_database
from evals.retrieval import prepare
from retrieval import filters
from retrieval.embed import LocalEmbedder
from retrieval.filters import EVERYTHING
from retrieval.search import search_vector

FILTERS = {"none": [], "50%": ["source in shard0,shard1,shard2,shard3,shard4"], "10%": ["source=shard3"],
           "1%": ["meta.bucket=7"], "0.1%": ["meta.cell=7"]}
_INDEXES = {  # dropped for the bulk load, rebuilt and timed after it
    "chunks_embedding_hnsw": "USING hnsw (embedding halfvec_cosine_ops) WITH (m = 16, ef_construction = 64)",
    "chunks_terms_idx": "USING gin (keyword_terms)",
    "chunks_source_idx": "(source)",
    "chunks_uri_idx": "(uri)",
    "chunks_author_idx": "(author)",
    "chunks_created_idx": "(created_at)",
    "chunks_updated_idx": "(updated_at)",
    "chunks_groups_idx": "USING gin (access_groups)",
    "chunks_metadata_idx": "USING gin (metadata jsonb_path_ops)",
}


def _base(source_url: str) -> dict:
    with db.connect(source_url) as conn:
        rows = conn.execute("SELECT c.text, c.embedding, c.token_count, c.keyword_terms, c.keyword_len, "
                            "c.keyword_vec, d.title FROM chunks c JOIN documents d ON d.id = c.document_id "
                            "ORDER BY c.id").fetchall()
    return {"rows": rows, "vectors": np.array([r[1].to_numpy() for r in rows], dtype=np.float32)}


def build(base_url: str, base: dict, n: int) -> tuple[str, dict]:
    """A fresh database of ``n`` synthetic chunks (module docstring); returns its URL and load/build seconds."""
    url = isolated_database(base_url, f"citewise_bench_scale_{n}", fresh=True)
    rows, vectors = base["rows"], base["vectors"]
    rng = np.random.default_rng(0)
    timings: dict = {}
    with db.connect(url, autocommit=True) as conn:
        from retrieval import store

        store.ensure_model(conn, "all-MiniLM-L6-v2", vectors.shape[1])
        for name in _INDEXES:
            conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))
        t = time.perf_counter()
        n_docs = (n + 9) // 10
        with conn.transaction(), conn.cursor().copy(
                "COPY documents (id, source, uri, title, metadata, char_count) FROM STDIN WITH (FORMAT BINARY)") as cp:
            cp.set_types(["text", "text", "text", "text", "jsonb", "int4"])
            for j in range(n_docs):
                cp.write_row((f"d{j}", f"shard{j % 10}", f"u{j}", f"doc {j}",
                              Jsonb({"bucket": str(j % 100), "cell": str(j % 1000)}), 1000))
        for start in range(0, n, 50_000):
            ids = np.arange(start, min(n, start + 50_000))
            own = ids % len(rows)
            blend = 0.75 * vectors[own] + 0.25 * vectors[rng.integers(0, len(rows), len(ids))]
            blend += rng.normal(0, 0.01, blend.shape).astype(np.float32)
            blend /= np.linalg.norm(blend, axis=1, keepdims=True)
            with conn.transaction(), conn.cursor().copy(
                    "COPY chunks (id, document_id, ordinal, text, text_hash, token_count, char_start, char_end, "
                    "embedding, keyword_terms, keyword_len, keyword_vec, keyword_avgdl, source, uri, metadata) "
                    "FROM STDIN WITH (FORMAT BINARY)") as cp:
                cp.set_types(["text", "text", "int4", "text", "text", "int4", "int4", "int4", "halfvec", "int4[]",
                              "int4", "sparsevec", "float4", "text", "text", "jsonb"])
                for i, b, v in zip(ids.tolist(), own.tolist(), blend, strict=True):
                    text, _, tokens, terms, length, kvec, _ = rows[b]
                    j = i // 10
                    cp.write_row((f"c{i}", f"d{j}", i % 10, text, f"h{b}", tokens, 0, len(text), HalfVector(v),
                                  terms, length, kvec, None, f"shard{j % 10}", f"u{j}",
                                  Jsonb({"bucket": str(j % 100), "cell": str(j % 1000)})))
        timings["load_s"] = round(time.perf_counter() - t, 1)
        conn.execute("SET maintenance_work_mem = '4GB'")
        conn.execute("SET max_parallel_maintenance_workers = 1")
        for name, definition in _INDEXES.items():
            t = time.perf_counter()
            conn.execute(f"CREATE INDEX {name} ON chunks {definition}")
            timings[f"build_{name}_s"] = round(time.perf_counter() - t, 1)
        conn.execute("VACUUM ANALYZE chunks")
        conn.execute("VACUUM ANALYZE documents")
    return url, timings


OLD_REV = "bb0268d"  # the last revision before this round's search changes
OLD_DEFAULTS = {"ef_search": 100, "keyword_postings": 20_000}  # its search defaults


def old_search(rev: str = OLD_REV) -> Callable[..., list]:
    """``search_vector`` as it was at ``rev`` (its statement and its filter compiler, loaded from git as modules of
    their own), to run the old code path on the same database in the same run."""
    root = Path(__file__).resolve().parents[1]

    def module(path: str) -> types.ModuleType:
        source = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True,
                                cwd=root).stdout
        mod = types.ModuleType(f"old_{Path(path).stem}")
        sys.modules[mod.__name__] = mod  # dataclasses look their module up
        exec(compile(source, f"{rev}:{path}", "exec"), mod.__dict__)
        return mod

    old_filters = module("retrieval/filters.py")
    old = module("retrieval/search.py")
    old.compile_filters = old_filters.compile_filters
    old.filters_module = old_filters
    return old.search_vector


def latencies(url: str, queries: list[str], qvecs: np.ndarray, embed_ms: list[float], exprs: list[str],
              cfg: SearchSettings, fn: Callable[..., list] = search_vector) -> dict:
    parsed = filters.parse_all(exprs)
    took = []
    with db.connect(url) as conn:
        for q, v in zip(queries, qvecs, strict=True):  # a warm-up pass: steady state, not the first cold reads
            fn(conn, q, v, scope=EVERYTHING, k=10, filters=parsed, cfg=cfg)
        for q, v in zip(queries, qvecs, strict=True):
            t = time.perf_counter()
            fn(conn, q, v, scope=EVERYTHING, k=10, filters=parsed, cfg=cfg)
            took.append((time.perf_counter() - t) * 1000)
    return {"search_only": stats.latency(took, "_ms"),
            "with_embedding": stats.latency([a + b for a, b in zip(took, embed_ms, strict=True)], "_ms")}


def recall(url: str, queries: list[str], qvecs: np.ndarray, cfg: SearchSettings, ef_values: list[int]) -> dict:
    """HNSW recall@10 against exact search, and vector-side latency, per ef_search."""
    out: dict = {}
    with db.connect(url) as conn:
        exact = [{h.chunk_id for h in search_vector(conn, q, v, scope=EVERYTHING, k=10, mode="vector", cfg=cfg,
                                                     exact=True)} for q, v in zip(queries, qvecs, strict=True)]
        for ef in ef_values:
            c = SearchSettings(**{**cfg.__dict__, "ef_search": ef})
            got, took = [], []
            for q, v, ex in zip(queries, qvecs, exact, strict=True):
                t = time.perf_counter()
                hits = search_vector(conn, q, v, scope=EVERYTHING, k=10, mode="vector", cfg=c, candidates=10)
                took.append((time.perf_counter() - t) * 1000)
                got.append(len({h.chunk_id for h in hits} & ex) / 10)
            out[str(ef)] = {"recall_at_10": round(statistics.fmean(got), 4), **stats.latency(took, "_ms")}
    return out


def keyword_budget(url: str, queries: list[str], qvecs: np.ndarray, cfg: SearchSettings, budgets: list[int]) -> dict:
    """Keyword-side top-10 at each postings budget against the unbounded keyword ranking. Recall counts a hit
    by score (at least the unbounded ranking's 10th BM25 score): copies of one text tie, and which tied copy comes
    back is arbitrary, not a miss."""
    out: dict = {}
    with db.connect(url) as conn:
        def run(budget: int) -> tuple[list[list[float]], list[float]]:
            c = SearchSettings(**{**cfg.__dict__, "keyword_postings": budget})
            scores, took = [], []
            for q, v in zip(queries, qvecs, strict=True):
                t = time.perf_counter()
                hits = search_vector(conn, q, v, scope=EVERYTHING, k=10, mode="keyword", cfg=c)
                took.append((time.perf_counter() - t) * 1000)
                scores.append([h.keyword_score or 0.0 for h in hits])
            return scores, took
        full, full_ms = run(10**9)
        out["unbounded"] = stats.latency(full_ms, "_ms")
        for b in budgets:
            got, took = run(b)
            recall = statistics.fmean(
                sum(s >= f[-1] - 1e-6 for s in g[:10]) / len(f) for g, f in zip(got, full, strict=True) if f)
            out[str(b)] = {"recall_at_10_vs_unbounded": round(recall, 4), **stats.latency(took, "_ms")}
    return out


_BIT_INDEX = ("CREATE INDEX IF NOT EXISTS chunks_embedding_bit ON chunks USING hnsw "
              "((binary_quantize(embedding)::bit({dim})) bit_hamming_ops) WITH (m = 16, ef_construction = 64)")
_BINARY = ("SELECT id FROM (SELECT id, embedding FROM chunks ORDER BY binary_quantize(embedding)::bit({dim}) <~> "
           "binary_quantize(%(q)s::halfvec({dim}))::bit({dim}) LIMIT %(pool)s) c "
           "ORDER BY embedding <=> %(q)s::halfvec({dim}) LIMIT %(k)s")


def binary_quantized(url: str, queries: list[str], qvecs: np.ndarray, cfg: SearchSettings, dim: int,
                     pool: int, k: int = 10, build: bool = True) -> dict:
    """Binary quantization (bit HNSW with Hamming distance, ``pool`` candidates re-scored by the full vectors)
    against the halfvec HNSW index: index size, build time, latency, recall@10 against exact."""
    out: dict = {}
    with db.connect(url, autocommit=True) as conn:
        if build:
            conn.execute("SET maintenance_work_mem = '4GB'")
            t = time.perf_counter()
            conn.execute(_BIT_INDEX.format(dim=dim))
            out["build_s"] = round(time.perf_counter() - t, 1)
        out["bit_index_mb"] = _index_mb(conn, "chunks_embedding_bit")
        out["halfvec_index_mb"] = _index_mb(conn, "chunks_embedding_hnsw")
        statement = _BINARY.format(dim=dim)
        got, took, exact_ms = [], [], []
        for v in qvecs:
            with conn.transaction():
                conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(min(1000, max(pool, 40))),))
                t = time.perf_counter()
                ids = [r[0] for r in conn.execute(statement, {"q": HalfVector(v), "pool": pool, "k": k})]
                took.append((time.perf_counter() - t) * 1000)
            with conn.transaction():
                conn.execute("SET LOCAL enable_indexscan = off")
                t = time.perf_counter()
                ex = {r[0] for r in conn.execute("SELECT id FROM chunks ORDER BY embedding <=> %s LIMIT %s",
                                                 (HalfVector(v), k))}
                exact_ms.append((time.perf_counter() - t) * 1000)
            got.append(len(set(ids) & ex) / k)
        out.update({"pool": pool, "recall_at_10": round(statistics.fmean(got), 4), **stats.latency(took, "_ms"),
                    "exact_scan": stats.latency(exact_ms, "_ms")})
    return out


def _index_mb(conn, name: str) -> float | None:
    row = conn.execute("SELECT pg_relation_size(%s::regclass)", (name,)).fetchone() if conn.execute(
        "SELECT to_regclass(%s)", (name,)).fetchone()[0] else None
    return round(row[0] / 2**20, 1) if row else None


def sizes(url: str) -> dict:
    with db.connect(url) as conn:
        db_mb = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0] / 2**20
        idx = {name: _index_mb(conn, name) for name in _INDEXES}
    return {"database_mb": round(db_mb, 1), "index_mb": idx}


def server_memory_mb() -> float:
    """Proportional set size summed over the PostgreSQL server's processes (shared buffers counted once)."""
    total = 0
    for p in psutil.process_iter(["name"]):
        if p.info["name"] in ("postgres", "postmaster"):
            with contextlib.suppress(psutil.Error):
                total += p.memory_full_info().pss
    return round(total / 2**20, 1)


def scifact_dense_ndcg(url: str, folder: Path, embedder, cfg: SearchSettings, dim: int) -> dict:
    """Dense nDCG@10 on the report half of SciFact train: halfvec HNSW against binary quantization re-scored."""
    data = beir.load(folder, "train", None, "report")
    ids = list(data.queries)
    vecs = embedder.embed_batch([data.queries[q] for q in ids])
    with db.connect(url, autocommit=True) as conn:
        conn.execute(_BIT_INDEX.format(dim=dim))
        uri = dict(conn.execute("SELECT id, uri FROM chunks"))
        half, binary = [], []
        for qid, v in zip(ids, vecs, strict=True):
            hits = search_vector(conn, data.queries[qid], v, scope=EVERYTHING, k=100, mode="vector", cfg=cfg)
            half.append(ndcg_at(dedupe([h.uri for h in hits]), data.qrels[qid]))
            with conn.transaction():
                conn.execute("SELECT set_config('hnsw.ef_search', '400', true)")
                rows = conn.execute(_BINARY.format(dim=dim), {"q": HalfVector(v), "pool": 400, "k": 100}).fetchall()
            binary.append(ndcg_at(dedupe([uri[r[0]] for r in rows]), data.qrels[qid]))
        conn.execute("DROP INDEX chunks_embedding_bit")
    return {"queries": len(ids), "halfvec_hnsw": round(statistics.fmean(half), 4),
            "binary_rescored_400": round(statistics.fmean(binary), 4)}


def plot(results: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = [r["chunks"] for r in results]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for sel in FILTERS:
        sized = [r for r in results if sel in r["search"]["new"]]
        axes[0, 0].plot([r["chunks"] for r in sized], [r["search"]["new"][sel]["search_only"]["p95_ms"]
                                                       for r in sized], "o-", label=sel)
        axes[0, 0].plot([r["chunks"] for r in sized], [r["search"]["old"][sel]["search_only"]["p95_ms"]
                                                       for r in sized], "x--", alpha=0.5, label=f"{sel} (old)")
    axes[0, 0].set(title="hybrid p95, search only (ms); x: old revision", xscale="log", yscale="log")
    axes[0, 0].legend(fontsize=7)
    for ef in results[0]["recall"]:
        axes[0, 1].plot(n, [r["recall"][ef]["recall_at_10"] for r in results], "o-", label=f"ef_search {ef}")
    axes[0, 1].set(title="HNSW recall@10 vs exact", xscale="log")
    axes[0, 1].legend()
    hnsw_s = [r["build"].get("build_chunks_embedding_hnsw_s", 0) for r in results]
    axes[1, 0].plot(n, hnsw_s, "o-", label="HNSW build s")
    axes[1, 0].plot(n, [r["build"].get("load_s", 0) for r in results], "o-", label="bulk load s")
    axes[1, 0].set(title="build and load time (s)", xscale="log")
    axes[1, 0].legend()
    axes[1, 1].plot(n, [r["sizes"]["database_mb"] for r in results], "o-", label="database on disk (MB)")
    axes[1, 1].plot(n, [r["server_memory_mb"] for r in results], "o-", label="server memory, PSS (MB)")
    axes[1, 1].set(title="size", xscale="log")
    axes[1, 1].legend()
    for ax in axes.flat:
        ax.set_xlabel("chunks")
    fig.tight_layout()
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "scale.png", dpi=100)


def measure(url: str, n: int, queries: list[str], qvecs: np.ndarray, embed_ms: list[float], cfg: SearchSettings,
            args: argparse.Namespace, build_timings: dict, selectivities: tuple[str, ...] = tuple(FILTERS)) -> dict:
    r: dict = {"chunks": n, "build": build_timings, "search": {"new": {}, "old": {}}}
    for sel in selectivities:
        exprs = FILTERS[sel]
        r["search"]["new"][sel] = latencies(url, queries, qvecs, embed_ms, exprs, cfg)
        m = args.old_queries
        old_cfg = SearchSettings(**{**cfg.__dict__, **OLD_DEFAULTS})
        r["search"]["old"][sel] = latencies(url, queries[:m], qvecs[:m], embed_ms[:m], exprs, old_cfg,
                                            old_search(args.old_rev))
        print(f"  {n}: {sel} new {r['search']['new'][sel]['search_only']} old "
              f"{r['search']['old'][sel]['search_only']}", flush=True)
    if args.only_latency:
        return r
    r["recall"] = recall(url, queries[: args.recall_queries], qvecs[: args.recall_queries], cfg,
                         [100, 200, 400, 1000])
    print(f"  {n}: recall {r['recall']}", flush=True)
    if args.only_latency:
        return r
    m = args.recall_queries
    r["keyword_budget"] = keyword_budget(url, queries[:m], qvecs[:m], cfg, [2_000, 5_000, 20_000, 100_000])
    r["sizes"] = sizes(url)
    r["server_memory_mb"] = server_memory_mb()
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--sizes", default="200000,1000000")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--recall-queries", type=int, default=100, help="queries for recall and keyword budgets")
    parser.add_argument("--old-queries", type=int, default=50, help="queries through the old statement")
    parser.add_argument("--binary", action=argparse.BooleanOptionalAction, default=True,
                        help="compare binary quantization at the largest size")
    parser.add_argument("--out", type=Path, default=Path("reports/scale"))
    parser.add_argument("--keep", action="store_true", help="keep the synthetic databases")
    parser.add_argument("--reuse", action="store_true", help="measure kept synthetic databases without rebuilding")
    parser.add_argument("--only-latency", action="store_true", help="hybrid latencies only (no recall, budgets, "
                        "quantization, sizes or plot)")
    parser.add_argument("--old-rev", default=OLD_REV, help="the revision whose search is the 'old' column")
    args = parser.parse_args()
    settings = Settings.from_env()
    cfg = settings.search
    embedder = LocalEmbedder()
    url, data = prepare(settings, embedder, args.dataset, "train")
    queries = list(data.queries.values())[: args.queries]
    embed_ms, qvecs = [], []
    for q in queries:
        t = time.perf_counter()
        qvecs.append(embedder.embed_batch([q])[0])
        embed_ms.append((time.perf_counter() - t) * 1000)
    qvecs = np.array(qvecs)
    dim = qvecs.shape[1]
    base_url = db.database_url(settings)
    results = []
    with db.connect(url) as conn:
        n_real = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
    print(f"SciFact, {n_real} chunks", flush=True)
    # SciFact's own documents carry none of the synthetic filter fields: unfiltered only
    results.append(measure(url, n_real, queries, qvecs, embed_ms, cfg, args, {}, ("none",)))
    if not args.only_latency:
        results[-1]["binary"] = scifact_dense_ndcg(url, args.dataset, embedder, cfg, dim)
    big = None
    for n in [int(s) for s in args.sizes.split(",") if s]:
        print(f"building {n} chunks", flush=True)
        big, timings = reused(base_url, n) if args.reuse else build(base_url, _base(url), n)
        print(f"  built: {timings}", flush=True)
        results.append(measure(big, n, queries, qvecs, embed_ms, cfg, args, timings))
        if not args.keep and n != int(args.sizes.split(",")[-1]):
            _drop(base_url, big)
    if args.only_latency:
        print(json.dumps(results, indent=2))
        return
    if big and args.binary:
        results[-1]["binary"] = binary_quantized(big, queries[: args.recall_queries], qvecs[: args.recall_queries],
                                                 cfg, dim, pool=400)
        results[-1]["binary_pool_100"] = binary_quantized(big, queries[: args.recall_queries],
                                                          qvecs[: args.recall_queries], cfg, dim, pool=100,
                                                          build=False)
    if big and not args.keep:
        _drop(base_url, big)
    out = {"ef_search": cfg.ef_search, "candidates": cfg.candidates, "queries": len(queries),
           "query_embedding": stats.latency(embed_ms, "_ms"), "cpus": os.cpu_count(), "results": results}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(out, indent=2))
    plot(results, args.out)
    print(json.dumps(out, indent=2))


def reused(base_url: str, n: int) -> tuple[str, dict]:
    """A kept synthetic database of ``n`` chunks (``--keep`` on an earlier run); its build times are that run's."""
    url = urlunsplit(urlsplit(base_url)._replace(path=f"/citewise_bench_scale_{n}"))
    with db.connect(url) as conn:
        if conn.execute("SELECT count(*) FROM chunks").fetchone()[0] != n:
            raise SystemExit(f"the kept database for {n} chunks is incomplete; run without --reuse")
    return url, {"reused": True}


def _drop(base_url: str, url: str) -> None:

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(urlunsplit(urlsplit(base_url)._replace(path="/postgres")), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
