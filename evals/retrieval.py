"""Retrieval quality on a BEIR-layout dataset: nDCG@10, Recall@10, Recall@100, MRR@10 per search mode.

Relevance is judged per document: documents are ranked by their best chunk. The corpus goes into its own
database (named from the dataset, model and chunking), so the user's data is never touched and a second run
reuses the first run's ingest.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core import db
from core.settings import Settings
from evals import beir, stats
from evals.ir_metrics import dedupe, mrr_at, ndcg_at, recall_at
from evals.isolated import isolated_database
from retrieval import learned
from retrieval.embed import Embedder
from retrieval.filters import EVERYTHING
from retrieval.ingest import IngestOptions, ingest
from retrieval.search import Mode, search_vector
from retrieval.types import content_hash


@dataclass(frozen=True)
class ModeResult:
    mode: str
    queries: int
    ndcg_at_10: float
    recall_at_10: float
    recall_at_100: float
    mrr_at_10: float
    p50_ms: float
    p95_ms: float


def _subset_corpus(data: beir.Dataset, corpus_limit: int, out: Path) -> Path:
    """The first ``corpus_limit`` documents plus every document judged for the selected queries."""
    wanted = {d for rel in data.qrels.values() for d in rel}
    with data.corpus.open() as src, out.open("w") as dst:
        for i, line in enumerate(src):
            doc_id = json.loads(line)["_id"]
            if i < corpus_limit or str(doc_id) in wanted:
                dst.write(line)
    return out


def prepare(settings: Settings, embedder: Embedder, folder: Path, split: str, limit: int | None = None,
            corpus_limit: int | None = None, on_progress=None, half: str | None = None) -> tuple[str, beir.Dataset]:
    """Ingest the corpus (or a subset) into its isolated database; return its URL and the dataset."""
    data = beir.load(folder, split, limit, half)
    precision = getattr(embedder, "precision", None)
    key = content_hash(embedder.name, precision, settings.chunk, settings.search.bm25_k1, settings.search.bm25_b,
                       settings.ingest.scrub_pii, corpus_limit, sorted(data.queries) if corpus_limit else None)[:10]
    # any folder name (trec-covid, my.data) makes a valid database name
    name = re.sub(r"[^a-z0-9_]+", "_", folder.resolve().name.lower())[:20]
    url = isolated_database(db.database_url(settings), f"citewise_eval_{name}_{key}")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = _subset_corpus(data, corpus_limit, Path(tmp) / "corpus.jsonl") if corpus_limit else data.corpus
        report = ingest(url, embedder, [corpus], settings, IngestOptions(source="corpus"), on_progress)
    if report.failed:
        raise RuntimeError(f"{report.failed} corpus documents failed to ingest: {report.failures[:3]}")
    return url, data


RERANKED = "hybrid+rerank"
EVAL_MODES = ("vector", "keyword", "hybrid", RERANKED)


def evaluate(url: str, data: beir.Dataset, embedder: Embedder, settings: Settings, modes: list[str],
             exact: bool = False, learned_version: str = "none",
             adapter: learned.Adapter | None = None) -> list[ModeResult]:
    """Score each mode over the dataset's queries (query embeddings computed once, shared by the modes).

    ``hybrid+rerank`` re-ranks the first ``settings.rerank.fetch`` hybrid hits with the configured re-ranker and
    keeps the rest in fused order, so Recall@100 stays comparable.
    """
    from retrieval.adapter import rerank
    from retrieval.rerank import load_reranker

    reranker = load_reranker(settings.rerank)
    ids = list(data.queries)
    vectors = base_vectors = embedder.embed_batch([data.queries[q] for q in ids])
    results = []
    with db.connect(url) as conn:
        # a learned query adapter (given, or stored in the dataset's database): queries pass through it
        adapter = adapter or learned.resolve(conn, learned_version)
        if adapter is not None:
            vectors = adapter.apply(vectors)
        for mode in modes:
            scores: dict[str, list[float]] = {"ndcg": [], "r10": [], "r100": [], "mrr": []}
            latencies = []
            for qid, vec, base_vec in zip(ids, vectors, base_vectors, strict=True):
                t = time.perf_counter()
                base: Mode = "hybrid" if mode == RERANKED else mode  # type: ignore[assignment]
                hits = search_vector(conn, data.queries[qid], vec, scope=EVERYTHING, k=300, mode=base,
                                     cfg=settings.search, candidates=300, exact=exact)
                if mode == RERANKED:
                    fetch = settings.rerank.fetch
                    top = rerank(reranker, data.queries[qid], hits[:fetch], fetch, settings.rerank.duplicate_jaccard,
                                 adapter, base_vec)
                    kept = {h.chunk_id for h in top}
                    hits = top + [h for h in hits if h.chunk_id not in kept]
                latencies.append((time.perf_counter() - t) * 1000)
                ranked = dedupe([h.uri for h in hits])
                rel = data.qrels[qid]
                scores["ndcg"].append(ndcg_at(ranked, rel, 10))
                scores["r10"].append(recall_at(ranked, rel, 10))
                scores["r100"].append(recall_at(ranked, rel, 100))
                scores["mrr"].append(mrr_at(ranked, rel, 10))
            latencies.sort()
            results.append(ModeResult(
                mode=mode, queries=len(ids), ndcg_at_10=statistics.fmean(scores["ndcg"]),
                recall_at_10=statistics.fmean(scores["r10"]), recall_at_100=statistics.fmean(scores["r100"]),
                mrr_at_10=statistics.fmean(scores["mrr"]), p50_ms=stats.percentile(latencies, 50),
                p95_ms=stats.percentile(latencies, 95),
            ))
    return results


def to_json(results: list[ModeResult]) -> list[dict]:
    return [asdict(r) for r in results]


@dataclass(frozen=True)
class ConfigResult:
    """One configuration of the side-by-side comparison: a label and its per-mode results."""

    label: str
    chunk_tokens: int
    ef_search: int | None  # None: exact vector search
    results: list[ModeResult]


def compare(settings: Settings, embedder: Embedder, folder: Path, split: str, *, limit: int | None = None,
            corpus_limit: int | None = None, ef_values: tuple[int, ...] = (), exact: bool = False,
            chunk_sizes: tuple[int, ...] = (), modes: list[str] | None = None, on_progress=None,
            half: str | None = None) -> list[ConfigResult]:
    """Every mode with the configured settings, then hybrid+rerank under each variation, in one run.

    Chunk sizes need their own ingest (their own isolated database, reused by later runs); ef_search and exact
    search reuse the default database.
    """
    import dataclasses

    out: list[ConfigResult] = []
    url, data = prepare(settings, embedder, folder, split, limit, corpus_limit, on_progress, half)
    base_ef = settings.search.ef_search
    out.append(ConfigResult(f"default (chunks {settings.chunk.max_tokens}, ef_search {base_ef})",
                            settings.chunk.max_tokens, base_ef,
                            evaluate(url, data, embedder, settings, modes or list(EVAL_MODES))))
    for ef in ef_values:
        s = dataclasses.replace(settings, search=dataclasses.replace(settings.search, ef_search=ef))
        out.append(ConfigResult(f"ef_search {ef}", settings.chunk.max_tokens, ef,
                                evaluate(url, data, embedder, s, ["vector", RERANKED])))
    if exact:
        out.append(ConfigResult("exact vector search", settings.chunk.max_tokens, None,
                                evaluate(url, data, embedder, settings, ["vector", RERANKED], exact=True)))
    for size in chunk_sizes:
        overlap = min(settings.chunk.overlap_tokens, size // 5)
        s = dataclasses.replace(settings, chunk=dataclasses.replace(settings.chunk, max_tokens=size,
                                                                    overlap_tokens=overlap))
        size_url, size_data = prepare(s, embedder, folder, split, limit, corpus_limit, on_progress, half)
        out.append(ConfigResult(f"chunks {size} tokens", size, base_ef,
                                evaluate(size_url, size_data, embedder, s, ["hybrid", RERANKED])))
    return out
