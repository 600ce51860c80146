"""A small corpus with known metadata for store, search and filter tests."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from core.settings import Settings
from retrieval import store
from retrieval.chunk import split
from retrieval.embed import Embedder
from retrieval.keywords import terms
from retrieval.store import PreparedDocument
from retrieval.types import Document

DOCS = [
    dict(source="handbook", uri="vacation.md", title="Vacation policy", author="Ada",
         created_at=datetime(2023, 3, 1, tzinfo=UTC), groups=("hr",), metadata={"team": "people", "lang": "en"},
         text="# Vacation policy\n\nNew employees get 25 vacation days per year. Unused days carry over until March."),
    dict(source="handbook", uri="expenses.md", title="Expense reports", author="Grace",
         created_at=datetime(2024, 6, 15, tzinfo=UTC), groups=("finance",), metadata={"team": "finance"},
         text="# Expense reports\n\nSubmit receipts within 30 days. Travel costs are reimbursed monthly."),
    dict(source="wiki", uri="deploy.md", title="Deploying the API", author="Linus",
         created_at=datetime(2025, 1, 10, tzinfo=UTC), groups=("eng",), metadata={"team": "platform"},
         text="# Deploying\n\nThe API deploys with kubectl apply. Rollbacks use the previous Helm release."),
    dict(source="wiki", uri="oncall.md", title="On-call rotation", author="Ada",
         created_at=datetime(2025, 9, 1, tzinfo=UTC), groups=("eng", "hr"), metadata={"team": "platform"},
         text="# On-call\n\nEngineers rotate on-call weekly. Pager alerts go to the primary first."),
]


def documents() -> list[Document]:
    return [Document(**d) for d in DOCS]  # type: ignore[arg-type]


def store_documents(conn, embedder: Embedder, settings: Settings, docs: list[Document]) -> None:
    prepared = [PreparedDocument(d, split(d, settings.chunk), {}) for d in docs]
    inputs = store.embed_inputs(prepared)
    vectors = embedder.embed_batch(inputs)
    store.ensure_model(conn, embedder.name, embedder.dim)
    avgdl = store.average_length(conn) or float(np.mean([len(terms(t)) for t in inputs]))
    store.write(conn, prepared, vectors, settings.search, avgdl)


# a document no public corpus holds, so the local LLM can only answer from it (the slow tier's tests)
ZEPHYR = Document(
    source="manuals", uri="zephyr9.md", title="Zephyr-9 espresso machine manual",
    text="# Zephyr-9 espresso machine\n\n## Descaling\n\nThe Zephyr-9 must be descaled every 200 cups. Use the "
         "blue ZX descaling tablets only; other brands void the warranty.\n\n## Grinder\n\nThe built-in grinder has "
         "14 settings. Setting 6 suits most espresso beans.")
