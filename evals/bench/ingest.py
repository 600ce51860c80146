"""Ingest benchmark: whole-pipeline throughput against the embedding model's own, for the local model in fp32 (the
old default) and bf16 (the default on CPUs with native bf16), side by side in one run.

    python -m evals.bench.ingest --dataset ../shared/data/scifact [--limit 1000] [--precisions fp32,bf16]

Prints per precision documents/s, chunks/s and the ratio pipeline/model (target >= 0.85), and peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from core import db
from core.settings import Settings
from evals.isolated import isolated_database
from retrieval import store
from retrieval.chunk import split
from retrieval.embed import LocalEmbedder
from retrieval.ingest import IngestOptions, ingest
from retrieval.loaders import RawDocument, load_path
from retrieval.store import PreparedDocument
from retrieval.types import Document


def _subset(corpus: Path, limit: int | None, out: Path) -> Path:
    with corpus.open() as src, out.open("w") as dst:
        for i, line in enumerate(src):
            if limit and i >= limit:
                break
            dst.write(line)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--limit", type=int, default=1000, help="documents (0 = the whole corpus)")
    parser.add_argument("--precisions", default="fp32,bf16", help="local model precisions, side by side")
    args = parser.parse_args()
    settings = Settings.from_env()
    result: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = _subset(args.dataset / "corpus.jsonl", args.limit or None, Path(tmp) / "corpus.jsonl")
        docs = [r for r in load_path(corpus, 10**10) if isinstance(r, RawDocument)]
        prepared = [PreparedDocument(d, split(d, settings.chunk), {}) for d in
                    (Document(source="corpus", uri=r.uri, text=r.text, title=r.title) for r in docs)]
        inputs = store.embed_inputs(prepared)
        for precision in args.precisions.split(","):
            embedder = LocalEmbedder(settings.embedding.batch_size, precision)
            # 1. the model alone, on exactly the inputs the pipeline will embed
            embedder.embed_batch(inputs[:64])  # warm-up
            t = time.perf_counter()
            for i in range(0, len(inputs), 256):
                embedder.embed_batch(inputs[i:i + 256])
            model_s = time.perf_counter() - t
            # 2. the whole pipeline into a fresh isolated database
            url = isolated_database(db.database_url(settings), "citewise_bench_ingest", fresh=True)
            t = time.perf_counter()
            report = ingest(url, embedder, [corpus], settings, IngestOptions(source="corpus"))
            pipeline_s = time.perf_counter() - t
            result[precision] = {
                "model_chunks_per_s": round(len(inputs) / model_s, 1),
                "pipeline_documents_per_s": round(len(docs) / pipeline_s, 1),
                "pipeline_chunks_per_s": round(report.chunks / pipeline_s, 1),
                "ratio_pipeline_to_model": round((report.chunks / pipeline_s) / (len(inputs) / model_s), 3),
                "chunks_written": report.chunks,
            }
            print(precision, json.dumps(result[precision]), flush=True)
    lengths = embedder.wordpiece_lengths(inputs)
    result.update({
        "documents": len(docs), "chunks": len(inputs),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "share_of_chunks_over_model_window": sum(1 for n in lengths if n > embedder.max_seq_length) / len(lengths),
    })
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
