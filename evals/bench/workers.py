"""Ingest workers benchmark: one `citewise worker` against two on the same queue, side by side in one run.

    python -m evals.bench.workers --dataset ../shared/data/scifact [--docs 400] [--files 20]

The SciFact corpus's first ``--docs`` documents are split into ``--files`` JSONL files (one job each) and ingested
into a fresh database per configuration: one worker; two workers; two workers with one math thread each (on a
machine with few cores, two workers each using every core contend). Worker start-up (loading the model) is
counted, as an operator would see it: from enqueue to the last job done.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core import db
from core.settings import Settings
from evals.isolated import isolated_database
from retrieval import queue
from retrieval.ingest import IngestOptions

CONFIGS = [("1 worker", 1, None), ("2 workers", 2, None), ("2 workers x 1 thread", 2, "1")]


def _split(corpus: Path, docs: int, files: int, out: Path) -> list[Path]:
    lines = corpus.read_text().splitlines()[:docs]
    per = -(-len(lines) // files)
    paths = []
    for i in range(files):
        part = lines[i * per:(i + 1) * per]
        if part:
            path = out / f"part-{i:03d}.jsonl"
            path.write_text("\n".join(part) + "\n")
            paths.append(path)
    return paths


def run(url: str, paths: list[Path], workers: int, threads: str | None, home: Path) -> dict[str, float]:
    started = time.perf_counter()
    queue.enqueue(url, paths, IngestOptions(source="scifact"))
    env = {**os.environ, "CITEWISE_DATABASE_URL": url, "CITEWISE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    if threads:
        env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    procs = [subprocess.Popen([sys.executable, "-m", "citewise.cli", "worker", "--until-empty"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in range(workers)]
    for p in procs:
        p.wait()
    seconds = time.perf_counter() - started
    with db.connect(url) as conn:
        docs, chunks = conn.execute("SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)").fetchone()
    return {"seconds": seconds, "documents": docs, "chunks": chunks, "docs_per_s": docs / seconds,
            "chunks_per_s": chunks / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--files", type=int, default=20)
    args = parser.parse_args()
    settings = Settings.from_env()
    server = db.database_url(settings)
    with tempfile.TemporaryDirectory() as tmp:
        paths = _split(args.dataset / "corpus.jsonl", args.docs, args.files, Path(tmp))
        print(f"{args.docs} SciFact documents in {len(paths)} files, {os.cpu_count()} CPU cores")
        print(f"{'configuration':<24}{'seconds':>9}{'docs':>7}{'chunks':>8}{'docs/s':>8}{'chunks/s':>10}")
        for i, (name, workers, threads) in enumerate(CONFIGS):
            url = isolated_database(server, f"citewise_bench_workers_{i}", fresh=True)
            r = run(url, paths, workers, threads, Path(tmp) / f"home{i}")
            print(f"{name:<24}{r['seconds']:>9.1f}{r['documents']:>7}{r['chunks']:>8}{r['docs_per_s']:>8.1f}"
                  f"{r['chunks_per_s']:>10.1f}", flush=True)


if __name__ == "__main__":
    main()
