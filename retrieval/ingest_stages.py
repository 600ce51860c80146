"""The ingest stages: read → classify → batch → embed → write, each one typed function between frozen records.

:func:`retrieval.ingest.ingest` composes them; the stages keep no tally and share no state, so each can be run and
tested alone. Ids are content hashes: classifying against the store is what makes a re-run a no-op.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from core.settings import ChunkSettings, SearchSettings, Settings
from retrieval import injections, store
from retrieval.chunk import split
from retrieval.embed import Embedder
from retrieval.loaders import Limits, LoadFailure, RawDocument, iter_files, load_path
from retrieval.pii import scrub
from retrieval.store import PreparedDocument
from retrieval.types import Document, content_hash


@dataclass(frozen=True)
class IngestOptions:
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    author: str | None = None
    batch_chunks: int = 256
    # a file's own uri and extra metadata, by its resolved path (a synced git source cites path@commit, with a link)
    per_file: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)


def default_source(path: Path) -> str:
    """A path's source name when none is given: the folder or file name (``docs``, ``corpus``)."""
    resolved = path.resolve()
    return resolved.stem if resolved.is_file() else resolved.name or "root"


# ---- the records passing between stages

@dataclass(frozen=True)
class Loaded:
    """A document read, cleaned and scrubbed (``read``), with what scrubbing found and anything to tell the user."""

    document: Document
    pii_counts: dict[str, int]
    notice: str | None = None


@dataclass(frozen=True)
class Classified:
    """A group of documents compared with the store (``classify``): the new and changed ones chunked."""

    prepared: tuple[PreparedDocument, ...]
    replacing: frozenset[str]  # ids of prepared documents that update an earlier version
    unchanged: int
    failures: tuple[LoadFailure, ...]


@dataclass(frozen=True)
class Batch:
    """Documents written in one transaction (``batches``): at least ``batch_chunks`` chunks, but the last."""

    documents: tuple[PreparedDocument, ...]
    replacing: frozenset[str]


@dataclass(frozen=True)
class Embedded:
    """A batch with one vector per chunk (``embed``); ``fresh`` of them computed, the rest reused from the store."""

    batch: Batch
    vectors: np.ndarray
    fresh: int


@dataclass(frozen=True)
class Written:
    """What a batch's write stored (``write``); a document the store refused is a failure, not a stop."""

    documents: int
    stored: tuple[PreparedDocument, ...]
    replacing: frozenset[str]
    failures: tuple[LoadFailure, ...]


# ---- the stages

def read(paths: list[Path], opts: IngestOptions, settings: Settings) -> Iterator[Loaded | LoadFailure]:
    """Load every file under ``paths`` (each in the parse sandbox, within the limits), clean and scrub it."""
    cfg = settings.ingest
    limits = Limits(cfg.max_file_mb * 1_000_000, cfg.max_pdf_pages, cfg.file_timeout_s, cfg.file_memory_mb)
    for root in paths:
        source = opts.source or default_source(root)
        for item in iter_files([root]):
            if isinstance(item, LoadFailure):
                yield item
                continue
            for raw in load_path(item, limits):
                if isinstance(raw, LoadFailure):
                    yield raw
                    continue
                own = opts.per_file.get(str(item.resolve()))
                uri = raw.uri if item.suffix.lower() == ".jsonl" else own[0] if own else str(item.resolve())
                if own:
                    raw = replace(raw, metadata={**raw.metadata, **own[1]})
                notice = None
                if raw.metadata.get("decoded_as") == "windows-1252":
                    notice = (f"{item.name} is not valid UTF-8 and was read as Windows-1252; if characters look "
                              "wrong, re-save it as UTF-8 and ingest it again")
                yield _document(raw, uri, source, opts, cfg.scrub_pii, notice)


def _document(raw: RawDocument, uri: str, source: str, opts: IngestOptions, scrub_pii: bool,
              notice: str | None) -> Loaded:
    counts: Counter[str] = Counter()

    def clean(value: Any) -> Any:
        """Every stored string is scrubbed: text, title, author, URI and metadata values alike."""
        if not scrub_pii:
            return value
        if isinstance(value, str):
            cleaned, found = scrub(value)
            counts.update(found)
            return cleaned
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    author = opts.author or raw.author
    doc = Document(
        source=source, uri=clean(uri), text=clean(raw.text), title=clean(raw.title),
        author=clean(author) if author else author, created_at=raw.created_at, updated_at=raw.updated_at,
        groups=tuple(sorted(set(opts.groups))), metadata=clean({**raw.metadata, **opts.metadata}),
    )
    return Loaded(doc, dict(counts), notice)


def classify(conn: psycopg.Connection, loaded: Sequence[Loaded], chunking: ChunkSettings) -> Classified:
    """Compare documents with the stored versions by id: unchanged ones are skipped, the others chunked (with
    sentences addressed to the assistant flagged); one with nothing to index after cleaning is a failure."""
    stored = store.existing_ids(conn, [(x.document.source, x.document.uri) for x in loaded])
    prepared, replacing, failures, unchanged = [], set(), [], 0
    for x in loaded:
        d = x.document
        old = stored.get((d.source, d.uri))
        if old == d.id:
            unchanged += 1
            continue
        chunks = [injections.flag(c) for c in split(d, chunking)]
        if not chunks:
            failures.append(LoadFailure(d.uri, "no text to index after cleaning"))
            continue
        if old is not None:
            replacing.add(d.id)
        prepared.append(PreparedDocument(d, chunks, x.pii_counts))
    return Classified(tuple(prepared), frozenset(replacing), unchanged, tuple(failures))


def batches(classified: Iterable[Classified], batch_chunks: int) -> Iterator[Batch]:
    """Cut the prepared documents, in order, into batches of at least ``batch_chunks`` chunks (the last smaller)."""
    documents: list[PreparedDocument] = []
    replacing: set[str] = set()
    for group in classified:
        for p in group.prepared:
            documents.append(p)
            if p.document.id in group.replacing:
                replacing.add(p.document.id)
            if sum(len(q.chunks) for q in documents) >= batch_chunks:
                yield Batch(tuple(documents), frozenset(replacing))
                documents, replacing = [], set()
    if documents:
        yield Batch(tuple(documents), frozenset(replacing))


def embed(conn: psycopg.Connection, embedder: Embedder, batch: Batch) -> Embedded:
    """One vector per chunk; a chunk whose exact model input is already stored reuses that embedding, so a changed
    document re-embeds only what changed."""
    inputs = store.embed_inputs(list(batch.documents))
    hashes = [content_hash(t) for t in inputs]
    known = store.reusable_embeddings(conn, sorted(set(hashes)))
    todo = [i for i, h in enumerate(hashes) if h not in known]
    vectors = np.zeros((len(inputs), embedder.dim), dtype=np.float32)
    if todo:
        vectors[todo] = embedder.embed_batch([inputs[i] for i in todo])
    for i, h in enumerate(hashes):
        if h in known:
            vectors[i] = known[h]
    return Embedded(batch, vectors, len(todo))


def write(conn: psycopg.Connection, embedded: Embedded, search: SearchSettings) -> Written:
    """Write a batch in one transaction, its BM25 weights at the average chunk length committed so far; if it
    fails, retry document by document to isolate the bad one. A failing database (disk full, gone) raises: no
    document would fare better."""
    documents = list(embedded.batch.documents)
    avgdl = store.average_length(conn) or _batch_avgdl(documents)
    try:
        store.write(conn, documents, embedded.vectors, search, avgdl)
    except psycopg.OperationalError:
        raise
    except Exception:
        return _write_one_by_one(conn, embedded, search, avgdl)
    return Written(len(documents), tuple(documents), embedded.batch.replacing, ())


def _write_one_by_one(conn: psycopg.Connection, embedded: Embedded, search: SearchSettings,
                      avgdl: float) -> Written:
    stored, failures, offset = [], [], 0
    for p in embedded.batch.documents:
        n = len(p.chunks)
        try:
            store.write(conn, [p], embedded.vectors[offset:offset + n], search, avgdl)
            stored.append(p)
        except psycopg.OperationalError:
            raise
        except Exception as exc:
            failures.append(LoadFailure(p.document.uri, f"could not be stored: {exc}"))
        offset += n
    return Written(len(embedded.batch.documents), tuple(stored), embedded.batch.replacing, tuple(failures))


def _batch_avgdl(documents: list[PreparedDocument]) -> float:
    """The first batch into an empty store has no stored average: its own stands in."""
    from retrieval.keywords import terms

    lengths = [len(terms(t)) for t in store.embed_inputs(documents)]
    return sum(lengths) / max(len(lengths), 1)
