"""BM25 stays BM25 as the corpus changes: after many batches of inserts, updates and deletes, the keyword scores
the database computes equal a direct BM25 computation over the chunks as they are now (within the re-weighting
bound), and without re-weighting they would not."""

from __future__ import annotations

import dataclasses
import math
import random
from collections import Counter

import numpy as np
import pytest

from core.settings import Settings
from retrieval import keywords, store
from retrieval.embed import passage_text
from retrieval.filters import EVERYTHING
from retrieval.ingest import IngestOptions, ingest
from retrieval.search import search_vector
from tests.conftest import write_files

_WORDS = ("invoice budget travel receipt laptop printer network password onboarding payroll holiday manager "
          "schedule release incident rollback deploy backup access policy contract").split()
QUERIES = ["invoice travel receipt", "printer network password", "holiday payroll manager", "deploy rollback"]


def _doc(rng: random.Random, words: int) -> str:
    return "# Note\n\n" + " ".join(rng.choice(_WORDS) for _ in range(words)) + ".\n"


def _direct(conn, query: str, k1: float, b: float) -> dict[str, float]:
    """Okapi BM25 (Lucene's IDF, as citewise uses) straight from the chunks' text, nothing stored reused."""
    rows = conn.execute("SELECT c.id, d.title, c.heading_path, c.text FROM chunks c "
                        "JOIN documents d ON d.id = c.document_id").fetchall()
    counts = {cid: Counter(keywords.terms(passage_text(t, tuple(h), x))) for cid, t, h, x in rows}
    n = len(counts)
    avgdl = sum(sum(c.values()) for c in counts.values()) / n
    df = Counter(term for c in counts.values() for term in c)
    wanted = set(keywords.terms(query))
    scores = {}
    for cid, c in counts.items():
        dl = sum(c.values())
        score = sum(math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5)) * c[t] * (k1 + 1)
                    / (c[t] + k1 * (1 - b + b * dl / avgdl)) for t in wanted if c[t])
        if score:
            scores[cid] = score
    return scores


def _worst_error(conn, search) -> float:
    worst = 0.0
    for q in QUERIES:
        direct = _direct(conn, q, search.bm25_k1, search.bm25_b)
        hits = search_vector(conn, q, np.zeros(384, dtype=np.float32), scope=EVERYTHING, k=1000, mode="keyword",
                             cfg=search)
        got = {h.chunk_id: h.keyword_score for h in hits}
        assert set(got) == set(direct), "the same chunks match"
        worst = max([worst, *(abs(got[c] - s) / s for c, s in direct.items())])
    return worst


@pytest.mark.parametrize("drift, bound", [(0.0, 1e-4), (0.05, 0.03)])
def test_keyword_scores_match_a_direct_bm25_after_many_inserts_and_deletes(url, conn, embedder, settings,
                                                                           tmp_path, drift, bound) -> None:
    search = dataclasses.replace(settings.search, bm25_reweight_drift=drift, keyword_postings=10**9)
    cfg: Settings = dataclasses.replace(settings, search=search)
    rng = random.Random(7)
    worst = []
    for batch, words in enumerate([8, 8, 120, 30, 200, 15]):  # the average length swings up and down
        folder = write_files(tmp_path / f"b{batch}", {f"n{i}.md": _doc(rng, words + i) for i in range(6)})
        ingest(url, embedder, [folder], cfg, IngestOptions(source=f"batch{batch}"))
        if batch in (2, 4):  # the long documents leave again
            store.delete(conn, source=f"batch{batch}")
            store.reweight(conn, search)
        if batch == 3:  # documents updated in place
            write_files(folder, {"n0.md": _doc(rng, 90), "n1.md": _doc(rng, 3)})
            ingest(url, embedder, [folder], cfg, IngestOptions(source=f"batch{batch}"))
        worst.append(_worst_error(conn, search))
    print(f"\ndrift bound {drift}: worst relative score error per batch {[f'{w:.2e}' for w in worst]}")
    assert max(worst) <= bound, worst


def test_without_re_weighting_the_scores_drift(url, conn, embedder, settings, tmp_path) -> None:
    """The check above can fail: frozen weights (re-weighting switched off) drift well past its bound."""
    search = dataclasses.replace(settings.search, bm25_reweight_drift=1e9, keyword_postings=10**9)
    cfg = dataclasses.replace(settings, search=search)
    rng = random.Random(7)
    for batch, words in enumerate([8, 8, 200]):
        folder = write_files(tmp_path / f"b{batch}", {f"n{i}.md": _doc(rng, words + i) for i in range(6)})
        ingest(url, embedder, [folder], cfg, IngestOptions(source=f"batch{batch}"))
    frozen = _worst_error(conn, search)
    print(f"\nweights frozen at write time: worst relative score error {frozen:.3f}")
    assert frozen > 0.10
