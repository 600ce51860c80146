"""A folder source's syncs, side by side in one run: the first sync of N files, then a sync after 10 files changed,
5 deleted and 5 added, then a sync with nothing changed; and the stock path for the same second step (``citewise
ingest`` of the whole folder again, which reads and hashes every file and deletes nothing). Then the same files as
a git source across three commits (each after the first: 10 changed, 5 deleted, 5 added).

    python -m evals.bench.sync --dataset ../shared/data/scifact [--files 1000]

Each file is one SciFact abstract as Markdown (title as heading). The database is a fresh isolated one.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from core import db
from core.settings import Settings
from evals.isolated import isolated_database
from retrieval import sources
from retrieval.embed import LocalEmbedder
from retrieval.ingest import IngestOptions, ingest


def _write(folder: Path, dataset: Path, n: int, skip: int = 0) -> list[Path]:
    paths = []
    with (dataset / "corpus.jsonl").open() as fh:
        for i, line in enumerate(fh):
            if i < skip:
                continue
            if len(paths) == n:
                break
            doc = json.loads(line)
            path = folder / f"{doc['_id']}.md"
            path.write_text(f"# {doc.get('title') or doc['_id']}\n\n{doc['text']}\n")
            paths.append(path)
    return paths


def _commit(repo: Path, message: str) -> None:
    for args in (["add", "-A"], ["commit", "-q", "-m", message]):
        subprocess.run(["git", "-c", "user.name=bench", "-c", "user.email=bench@example.org", *args], cwd=repo,
                       check=True)


def _change(folder: Path, files: list[Path], dataset: Path, step: int, total: int) -> list[Path]:
    """10 files changed, 5 deleted, 5 added; return the files still there."""
    alive = [p for p in files if p.exists()]
    for p in alive[:10]:
        p.write_text(p.read_text() + f"\nRevised in step {step}.\n")
    for p in alive[10:15]:
        p.unlink()
    return [p for p in alive if p.exists()] + _write(folder, dataset, 5, skip=total + 5 * step)


def _git_source(dataset: Path, n: int, settings: Settings, embedder: LocalEmbedder) -> dict:
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "repo"
        repo.mkdir()
        subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
        files = _write(repo, dataset, n)
        _commit(repo, "one")
        url = isolated_database(db.database_url(settings), "citewise_bench_sync_git", fresh=True)
        with db.connect(url, autocommit=True) as conn:
            sources.add(conn, sources.Source("bench-git", str(repo)), Path(tmp) / "home")
        home_settings = replace(settings, home=Path(tmp) / "home")
        for step in range(3):
            if step:
                files = _change(repo, files, dataset, step, n)
                _commit(repo, f"step {step}")
            res = sources.sync(url, embedder, home_settings, "bench-git")
            out[f"commit {step + 1}"] = {"seconds": round(res.seconds, 2), **res.counts}
        out["commit 2 / commit 1"] = round(out["commit 2"]["seconds"] / out["commit 1"]["seconds"], 4)
        out["commit 3 / commit 1"] = round(out["commit 3"]["seconds"] / out["commit 1"]["seconds"], 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    settings = Settings.from_env()
    embedder = LocalEmbedder(settings.embedding.batch_size)
    embedder.embed_batch(["warm-up"])
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        folder.mkdir()
        files = _write(folder, args.dataset, args.files)
        url = isolated_database(db.database_url(settings), "citewise_bench_sync", fresh=True)
        with db.connect(url, autocommit=True) as conn:
            sources.add(conn, sources.Source("bench", str(folder)))
        first = sources.sync(url, embedder, settings, "bench")
        for p in files[:10]:
            p.write_text(p.read_text() + "\nRevised: this paragraph was added in the second version.\n")
        for p in files[10:15]:
            p.unlink()
        _write(folder, args.dataset, 5, skip=args.files)
        second = sources.sync(url, embedder, settings, "bench")
        third = sources.sync(url, embedder, settings, "bench")
        # the stock path for the same change: ingest the whole folder again under the same source name
        for p in files[15:25]:
            p.write_text(p.read_text() + "\nRevised again.\n")
        t = time.perf_counter()
        stock = ingest(url, embedder, [folder], settings, IngestOptions(source="bench"))
        stock_s = time.perf_counter() - t
        with db.connect(url) as conn:
            stale = conn.execute("SELECT count(*) FROM documents WHERE source = 'bench' AND uri = ANY(%s)",
                                 ([str(p.resolve()) for p in files[10:15]],)).fetchone()[0]
    for name, res in (("first sync", first), ("second sync (10 changed, 5 deleted, 5 added)", second),
                      ("third sync (nothing changed)", third)):
        out[name] = {"seconds": round(res.seconds, 2), **res.counts}
    out["second / first"] = round(second.seconds / first.seconds, 4)
    out["stock: citewise ingest of the folder again (10 changed)"] = {
        "seconds": round(stock_s, 2), "added": stock.added, "updated": stock.updated, "unchanged": stock.unchanged}
    out["deleted files' documents still stored after the syncs"] = stale
    out["git source"] = _git_source(args.dataset, args.files, settings, embedder)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
