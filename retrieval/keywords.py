"""BM25 term weights as pgvector ``sparsevec``: the keyword side of hybrid search, stored beside each chunk.

A chunk's vector holds BM25's saturated, length-normalised term frequency; the query vector holds each query
term's IDF, computed in SQL from ``keyword_df`` at query time. Their inner product is the chunk's BM25 score.
Terms are Snowball-stemmed (PostgreSQL's ``english`` configuration uses the same stemmer), stop words dropped,
and hashed to ids below pgvector's sparsevec dimension limit.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
from collections import Counter
from dataclasses import dataclass

from pgvector import SparseVector

DIM = 1_000_000_000  # pgvector's sparsevec dimension limit
_PRIME = 999_999_937
_TOKEN = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset("""
a about above after again against all am an and any are aren't as at be because been before being below between
both but by can could did do does doing down during each few for from further had has have having he her here hers
herself him himself his how i if in into is it its itself just me more most my myself no nor not now of off on once
only or other our ours ourselves out over own s same she should so some such t than that the their theirs them
themselves then there these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves
""".split())
_local = threading.local()


def _stemmer():  # PyStemmer objects are not thread-safe: one per thread
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


@functools.lru_cache(maxsize=500_000)
def term_id(term: str) -> int:
    """A stable id in [1, DIM) for a stemmed term (1-based, as sparsevec's text form expects)."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=8).digest(), "big") % _PRIME + 1


def terms(text: str) -> list[str]:
    """Lower-cased, stop-word-free, stemmed terms of ``text``."""
    words = [w for w in _TOKEN.findall(text.lower()) if w not in STOPWORDS]
    return _stemmer().stemWords(words)


@dataclass(frozen=True)
class KeywordVector:
    term_ids: list[int]
    length: int
    vector: SparseVector


def document_vector(text: str, avgdl: float, k1: float, b: float) -> KeywordVector:
    """BM25's document side: ``tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl))`` per term."""
    counts = Counter(term_id(t) for t in terms(text))
    dl = sum(counts.values())
    norm = k1 * (1 - b + b * dl / max(avgdl, 1.0))
    weights = {i - 1: tf * (k1 + 1) / (tf + norm) for i, tf in counts.items()}
    return KeywordVector(sorted(counts), dl, SparseVector(weights, DIM))


def query_terms(text: str) -> list[int]:
    """The distinct term ids of a query, for the IDF lookup in SQL."""
    return sorted({term_id(t) for t in terms(text)})
