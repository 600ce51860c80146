"""Request-path benchmark: search latency and the chain's own (non-LLM) overhead, for this tree and, side by side
in the same run, another checkout of citewise (say the commit before a refactor).

    OPENBLAS_NUM_THREADS=1 python evals/bench/paths.py --scifact ../shared/data/scifact [--old /tmp/citewise-old]

Search: p50/p95 of hybrid search over SciFact train (5,183 abstracts), search-only and with the query
embedding, for the top 10 alone and for the chain's default path (over-fetch ``CITEWISE_RERANK_FETCH``, re-rank).
Chain overhead: wall time of whole answers on the demo corpus (docs/) through the tree's answer path
(the front desk where there is one) with a stand-in LLM that replies at once, so what is timed is everything
citewise does around the model: condense check, embedding, search, re-rank, context, verification, recording.
Each tree runs in its own process on the same databases (ingested once), one after the other, so the machine's
load is as alike as it can be; run it twice and read both.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if __name__ == "__main__":  # run by path: its own folder must not shadow the packages (bench/ingest.py)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
REPLY = "New employees get 25 vacation days per year [1]."


def _own(path: str):
    """A file of this tree loaded by path, so both trees are measured with the very same code (the statistics,
    and the OpenAI-protocol stand-in LLM the test suite keeps in tests/helpers/)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"bench_{Path(path).stem}", ROOT / path)
    loaded = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(loaded)  # type: ignore[union-attr]
    return loaded


def _pct(values: list[float]) -> dict[str, float]:
    return _own("evals/stats.py").latency(values, "_ms", 2)


def _has(module: str) -> bool:
    """Whether the tree on PYTHONPATH has ``module`` (a.b) as its own file. Imports cannot tell: setuptools'
    editable finder maps a submodule the tree lacks onto this checkout's file."""
    package, _, name = module.rpartition(".")
    try:
        folder = Path(importlib.import_module(package).__file__).resolve().parent
    except ImportError:  # the package itself is in neither tree
        return False
    tree = Path.cwd().resolve()  # each tree is measured with itself as the working directory
    return folder.is_relative_to(tree) and (folder / f"{name}.py").exists()


def _module(*names: str):
    """The first of ``names`` the tree on PYTHONPATH has: the request path's modules moved between revisions."""
    return importlib.import_module(next(n for n in names if _has(n)))


def _core():
    """The database module and Settings of the tree on PYTHONPATH (before or after the core package)."""
    if _has("retrieval.settings"):
        from retrieval.settings import Settings

        from retrieval import db
    else:
        from core import db  # type: ignore[no-redef]
        from core.settings import Settings  # type: ignore[no-redef]
    return db, Settings


def _search(scifact: Path, n_queries: int) -> dict:
    from evals.retrieval import prepare
    from retrieval.embed import LocalEmbedder
    from retrieval.search import search_vector

    db, Settings = _core()
    settings = Settings.from_env()
    embedder = LocalEmbedder()
    url, data = prepare(settings, embedder, scifact, "train")
    queries = list(data.queries.values())[:n_queries]
    scoped = {"scope": importlib.import_module("retrieval.filters").EVERYTHING} \
        if "scope" in inspect.signature(search_vector).parameters else {}
    reranker = importlib.import_module("retrieval.rerank").load_reranker(settings.rerank)
    only, whole, default, default_whole = [], [], [], []
    with db.connect(url) as conn:
        for q in queries[:10]:  # warm caches and the model
            search_vector(conn, q, embedder.embed_batch([q])[0], k=10, cfg=settings.search, **scoped)
        for q in queries:
            t0 = time.perf_counter()
            vec = embedder.embed_batch([q])[0]
            t1 = time.perf_counter()
            search_vector(conn, q, vec, k=10, cfg=settings.search, **scoped)
            t2 = time.perf_counter()
            only.append((t2 - t1) * 1000)
            whole.append((t2 - t0) * 1000)
        for q in queries:  # the chain's default: over-fetch for the re-ranker, re-rank to twice five sources
            t0 = time.perf_counter()
            vec = embedder.embed_batch([q])[0]
            t1 = time.perf_counter()
            hits = search_vector(conn, q, vec, k=settings.rerank.fetch, cfg=settings.search, **scoped)
            reranker.rerank(q, hits, 10)
            t2 = time.perf_counter()
            default.append((t2 - t1) * 1000)
            default_whole.append((t2 - t0) * 1000)
    return {"search_only": _pct(only), "with_embedding": _pct(whole), "default_path_search_only": _pct(default),
            "default_path_with_embedding": _pct(default_whole)}


def _chain(n_questions: int) -> dict:
    StandIn = _own("tests/helpers/standin_llm.py").StandIn  # the old tree is measured against the very same stand-in
    Endpoint = _module("chat.engine.llm", "chat.llm").Endpoint
    services_module = _module("chat.engine.services", "chat.services")
    open_pool = services_module.open_pool
    from evals.isolated import isolated_database
    from retrieval.embed import LocalEmbedder
    from retrieval.ingest import IngestOptions, ingest
    from retrieval.rerank import load_reranker

    db, Settings = _core()
    settings = Settings.from_env()
    embedder = LocalEmbedder()
    url = isolated_database(db.database_url(settings), "citewise_bench_paths_demo", fresh=False)
    with db.connect(url) as conn:
        empty = conn.execute("SELECT count(*) FROM documents").fetchone()[0] == 0
    if empty:
        ingest(url, embedder, [ROOT / "docs"], settings, IngestOptions(source="handbook"))
    questions = ["How do I filter search results by date?", "Which sampling presets exist?",
                 "What happens when a PDF is corrupt?", "How do I keep documents visible only to HR?",
                 "How is the answer checked before it is shown?"]
    pool = open_pool(url, 4)
    timings = []
    with StandIn(REPLY) as llm:
        endpoint = Endpoint(llm.base_url, "k", "standin", False)
        if _has("chat.desk.frontdesk") or _has("chat.frontdesk"):
            frontdesk = _module("chat.desk.frontdesk", "chat.frontdesk")
            FrontDesk, Services = frontdesk.FrontDesk, services_module.Services
            Request = getattr(frontdesk, "AskRequest", None) or frontdesk.Request  # renamed in issue 24

            desk = FrontDesk(Services(settings, pool, embedder, load_reranker(settings.rerank), endpoint))
            def answer(text: str):
                return desk.ask(Request(text=text, channel="eval", user_id=None, conversation_id=str(uuid.uuid4()),
                                        operator=True))
        else:  # the tree before the front desk
            from chat.chain import Services, ask  # type: ignore[no-redef]

            from chat.types import Question

            services = Services(settings, pool, embedder, load_reranker(settings.rerank), endpoint)
            answer = lambda text: ask(services, Question(text, str(uuid.uuid4()), "eval", operator=True))  # noqa: E731
        for i in range(n_questions + 5):
            t = time.perf_counter()
            answer(questions[i % len(questions)])
            if i >= 5:  # the first few warm the model, the pool and the prompt cache
                timings.append((time.perf_counter() - t) * 1000)
    pool.close()
    return {"answer_overhead": _pct(timings)}


def measure(scifact: Path, n_queries: int, n_questions: int) -> dict:
    """``n_queries`` 0 measures the chain alone (no SciFact ingest: minutes saved when only the request path moved)."""
    return ({"search": _search(scifact, n_queries)} if n_queries else {}) | {"chain": _chain(n_questions)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scifact", type=Path, required=True)
    parser.add_argument("--old", type=Path, help="another citewise checkout to measure side by side")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--questions", type=int, default=60)
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_only:
        print(json.dumps(measure(args.scifact.resolve(), args.queries, args.questions)))
        return
    trees = {"new": ROOT} | ({"old": args.old.resolve()} if args.old else {})
    results = {}
    for name, tree in reversed(trees.items()):
        env = {**os.environ, "PYTHONPATH": str(tree)}
        proc = subprocess.run([sys.executable, __file__, "--measure-only", "--scifact", str(args.scifact.resolve()),
                               "--queries", str(args.queries), "--questions", str(args.questions)],
                              env=env, cwd=tree, capture_output=True, text=True)
        if proc.returncode:
            raise SystemExit(f"{name} ({tree}) failed:\n{proc.stderr[-3000:]}")
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(json.dumps(results, indent=2))
    if len(results) == 2:
        print(f"{'figure':<42} {'old':>10} {'new':>10}")
        for part, figures in results["new"].items():
            for figure, values in figures.items():
                for stat in ("p50_ms", "p95_ms"):
                    print(f"{part + ' ' + figure + ' ' + stat:<42} {results['old'][part][figure][stat]:>10} "
                          f"{values[stat]:>10}")


if __name__ == "__main__":
    main()
