"""Calibrating the abstention threshold on the best vector similarity among retrieved candidates.

For every XQuAD question, the best similarity is measured twice: over the whole corpus (answerable) and with the
question's own article filtered out (unanswerable: no paragraph holds the answer). The threshold is chosen to
abstain on as many unanswerable questions as possible while abstaining on at most ``max_false`` of answerable ones.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from core import db
from core.settings import Settings
from evals import squad
from evals.isolated import isolated_database
from retrieval import filters
from retrieval.embed import Embedder
from retrieval.filters import EVERYTHING
from retrieval.ingest import IngestOptions, ingest
from retrieval.search import search_vector
from retrieval.types import content_hash


@dataclass(frozen=True)
class Calibration:
    threshold: float
    false_abstention: float  # share of answerable questions that would abstain
    correct_abstention: float  # share of unanswerable questions that would abstain
    questions: int
    table: list[tuple[float, float, float]]  # (threshold, false_abstention, correct_abstention)


def prepare_squad(settings: Settings, embedder: Embedder, path: Path) -> tuple[str, list[squad.QA]]:
    docs, qas = squad.load(path)
    key = content_hash(embedder.name, settings.chunk, settings.ingest.scrub_pii, path.name)[:10]
    url = isolated_database(db.database_url(settings), f"citewise_eval_squad_{key}")
    with tempfile.TemporaryDirectory() as tmp:
        corpus = squad.write_corpus(docs, Path(tmp) / "paragraphs.jsonl")
        report = ingest(url, embedder, [corpus], settings, IngestOptions(source="xquad"))
    if report.failed:
        raise RuntimeError(f"{report.failed} paragraphs failed to ingest: {report.failures[:3]}")
    return url, qas


def best_similarities(url: str, embedder: Embedder, settings: Settings, qas: list[squad.QA]
                      ) -> tuple[list[float], list[float]]:
    vectors = embedder.embed_batch([q.question for q in qas])
    answerable, unanswerable = [], []
    with db.connect(url) as conn:
        for q, v in zip(qas, vectors, strict=True):
            for bucket, flt in ((answerable, []), (unanswerable, [filters.make("meta.article", "!=", q.article)])):
                hits = search_vector(conn, q.question, v, scope=EVERYTHING, k=settings.rerank.fetch, filters=flt,
                                     cfg=settings.search)
                bucket.append(max((h.vector_similarity or -1.0) for h in hits) if hits else -1.0)
    return answerable, unanswerable


def choose(answerable: list[float], unanswerable: list[float], max_false: float = 0.02) -> Calibration:
    table = []
    for i in range(0, 101):
        t = i / 100
        fa = sum(s < t for s in answerable) / len(answerable)
        ca = sum(s < t for s in unanswerable) / len(unanswerable)
        table.append((t, fa, ca))
    ok = [row for row in table if row[1] <= max_false]
    best = max(ok, key=lambda r: (r[2], -r[1]))
    return Calibration(best[0], best[1], best[2], len(answerable), table)
