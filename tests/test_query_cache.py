"""Query embeddings are cached by exact text (repeated and popular questions skip the model); passages never are."""

from __future__ import annotations

import numpy as np
import pytest

from retrieval.embed import CachedQueries, embed_query


class _Counting:
    def __init__(self, inner) -> None:
        self.inner, self.name, self.dim, self.calls = inner, inner.name, inner.dim, 0

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return self.inner.embed_batch(texts)


def test_a_repeated_question_is_embedded_once_and_gets_the_same_vector(embedder) -> None:
    counting = _Counting(embedder)
    cached = CachedQueries(counting, size=2)
    first = embed_query(cached, "How do I filter by date?")
    again = embed_query(cached, "How do I filter by date?")
    assert counting.calls == 1 and (cached.hits, cached.misses) == (1, 1)
    assert np.array_equal(first, again)
    assert np.allclose(first, embedder.embed_batch(["How do I filter by date?"])[0], atol=1e-6)
    with pytest.raises(ValueError):
        again[0] = 1.0  # shared between requests: read-only
    embed_query(cached, "how do i filter by date?")  # another text is another query
    assert counting.calls == 2
    embed_query(cached, "Which file types can I ingest?")  # the least recently used one leaves
    embed_query(cached, "How do I filter by date?")
    assert counting.calls == 4
    cached.embed_batch(["a passage"])
    cached.embed_batch(["a passage"])
    assert counting.calls == 6, "passages go to the model every time"
