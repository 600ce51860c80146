"""The ingest pipeline: load → clean → scrub PII → chunk → embed → store, in batches.

Writing a batch overlaps with embedding the next one (a single writer thread, its own connection), so the
pipeline runs at close to the embedding model's own speed. Each batch commits as one transaction: a crash or
Ctrl-C leaves whole documents or none, and a re-run skips what was committed (ids are content hashes).
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from core import db
from core.settings import Settings
from retrieval import injections, store
from retrieval.chunk import split
from retrieval.embed import Embedder
from retrieval.loaders import Limits, LoadFailure, RawDocument, iter_files, load_path
from retrieval.pii import scrub
from retrieval.store import PreparedDocument
from retrieval.types import Document, content_hash


@dataclass
class IngestReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    chunks: int = 0
    embedded: int = 0
    reweighted: int = 0  # older chunks whose BM25 weights were brought to the new average length
    failures: list[LoadFailure] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)  # ingested, but the user should know (by file name)
    pii: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return len(self.failures)


class IngestStopped(RuntimeError):
    """The database stopped taking writes (its disk is full, or it went away): the ingest stops at once rather
    than fail every remaining document the same way. Committed documents are whole; ``report`` says which."""

    def __init__(self, message: str, report: IngestReport) -> None:
        super().__init__(message)
        self.report = report


def _stopped(exc: psycopg.OperationalError, settings: Settings, report: IngestReport) -> IngestStopped:
    why = db.first_line(exc)
    kept = (f"the {report.added + report.updated} document(s) stored so far are complete, and the same command "
            "adds the rest")
    if isinstance(exc, psycopg.errors.DiskFull) or "No space left" in str(exc):
        where = f" ({settings.pg_dir})" if not settings.database_url else ""
        return IngestStopped(f"the database's disk is full: {why}. Free space on the disk that holds the "
                             f"database{where} and run the ingest again; {kept}.", report)
    return IngestStopped(f"the database stopped answering: {why}. Check it (citewise db status) and run the "
                         f"ingest again; {kept}.", report)


@dataclass(frozen=True)
class IngestOptions:
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    groups: tuple[str, ...] = ()
    author: str | None = None
    batch_chunks: int = 256


def default_source(path: Path) -> str:
    """A path's source name when none is given: the folder or file name (``docs``, ``corpus``)."""
    resolved = path.resolve()
    return resolved.stem if resolved.is_file() else resolved.name or "root"


def _documents(paths: list[Path], opts: IngestOptions, settings: Settings,
               report: IngestReport) -> Iterator[tuple[Document, dict[str, int]]]:
    cfg = settings.ingest
    limits = Limits(cfg.max_file_mb * 1_000_000, cfg.max_pdf_pages, cfg.file_timeout_s, cfg.file_memory_mb)
    for root in paths:
        source = opts.source or default_source(root)
        for item in iter_files([root]):
            if isinstance(item, LoadFailure):
                report.failures.append(item)
                continue
            for raw in load_path(item, limits):
                if isinstance(raw, LoadFailure):
                    report.failures.append(raw)
                    continue
                uri = raw.uri if item.suffix.lower() == ".jsonl" else str(item.resolve())
                if raw.metadata.get("decoded_as") == "windows-1252":
                    report.notices.append(f"{item.name} is not valid UTF-8 and was read as Windows-1252; if "
                                          "characters look wrong, re-save it as UTF-8 and ingest it again")
                yield _document(raw, uri, source, opts, settings.ingest.scrub_pii)


def _document(raw: RawDocument, uri: str, source: str, opts: IngestOptions,
              scrub_pii: bool) -> tuple[Document, dict[str, int]]:
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
    return doc, dict(counts)


def count_inputs(paths: list[Path]) -> int:
    """How many documents ``paths`` will yield (JSONL files count their lines), for a progress total."""
    total = 0
    for item in iter_files(paths):
        if isinstance(item, Path) and item.suffix.lower() == ".jsonl":
            try:
                with item.open("rb") as fh:
                    total += sum(1 for line in fh if line.strip())
            except OSError:
                total += 1
        else:
            total += 1
    return total


def _embed(conn, embedder: Embedder, prepared: list[PreparedDocument]) -> tuple[np.ndarray, int]:
    inputs = store.embed_inputs(prepared)
    hashes = [content_hash(t) for t in inputs]
    known = store.reusable_embeddings(conn, sorted(set(hashes)))
    todo = [i for i, h in enumerate(hashes) if h not in known]
    vectors = np.zeros((len(inputs), embedder.dim), dtype=np.float32)
    if todo:
        vectors[todo] = embedder.embed_batch([inputs[i] for i in todo])
    for i, h in enumerate(hashes):
        if h in known:
            vectors[i] = known[h]
    return vectors, len(todo)


def ingest(
    url: str,
    embedder: Embedder,
    paths: list[Path],
    settings: Settings,
    opts: IngestOptions | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> IngestReport:
    """Ingest files and folders; report added, updated, unchanged and failed documents.

    ``on_progress(documents, chunks)`` is called with increments as batches are committed.
    """
    opts = opts or IngestOptions()
    report = IngestReport()
    started = time.perf_counter()
    reader, writer = db.connect(url, autocommit=True), db.connect(url, autocommit=True)
    store.ensure_model(reader, embedder.name, embedder.dim)
    pending: Future | None = None
    batch: list[PreparedDocument] = []
    replacing: set[str] = set()  # ids of documents that update an earlier version

    def flush() -> None:
        nonlocal pending, batch
        if not batch:
            return
        vectors, embedded = _embed(reader, embedder, batch)
        report.embedded += embedded
        if pending is not None:
            pending.result()
        avgdl = store.average_length(reader) or _batch_avgdl(batch)
        pending = pool.submit(_write, writer, batch, vectors, settings, avgdl, report, replacing, on_progress)
        batch = []

    def classify(docs: list[Document], counts: list[dict[str, int]]) -> None:
        stored = store.existing_ids(reader, [(d.source, d.uri) for d in docs])
        for d, c in zip(docs, counts, strict=True):
            old = stored.get((d.source, d.uri))
            if old == d.id:
                report.unchanged += 1
                if on_progress:
                    on_progress(1, 0)
                continue
            chunks = [injections.flag(c) for c in split(d, settings.chunk)]
            if not chunks:
                report.failures.append(LoadFailure(d.uri, "no text to index after cleaning"))
                continue
            if old is not None:
                replacing.add(d.id)
            batch.append(PreparedDocument(d, chunks, c))
            if sum(len(p.chunks) for p in batch) >= opts.batch_chunks:
                flush()

    try:
        # leaving the executor waits for a write in flight, so even Ctrl-C ends on a committed (or rolled back) batch
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="citewise-writer") as pool:
            docs: list[Document] = []
            counts: list[dict[str, int]] = []
            seen: set[tuple[str, str]] = set()
            for doc, c in _documents(paths, opts, settings, report):
                if (doc.source, doc.uri) in seen:  # the same file named twice in one run
                    continue
                seen.add((doc.source, doc.uri))
                docs.append(doc)
                counts.append(c)
                if len(docs) >= 64:
                    classify(docs, counts)
                    docs, counts = [], []
            classify(docs, counts)
            flush()
            if pending is not None:
                pending.result()
        if report.added or report.updated:
            report.reweighted = store.reweight(writer, settings.search)
    except psycopg.OperationalError as exc:
        report.seconds = time.perf_counter() - started
        raise _stopped(exc, settings, report) from None
    finally:
        with contextlib.suppress(psycopg.Error):
            reader.close()
            writer.close()
    report.seconds = time.perf_counter() - started
    return report


def _batch_avgdl(batch: list[PreparedDocument]) -> float:
    from retrieval.keywords import terms

    lengths = [len(terms(t)) for t in store.embed_inputs(batch)]
    return sum(lengths) / max(len(lengths), 1)


def _write(conn, prepared: list[PreparedDocument], vectors: np.ndarray, settings: Settings, avgdl: float,
           report: IngestReport, replacing: set[str], on_progress: Callable[[int, int], None] | None) -> None:
    """Write a batch in one transaction; if it fails, retry document by document to isolate the bad one."""
    try:
        store.write(conn, prepared, vectors, settings.search, avgdl)
        written = prepared
    except psycopg.OperationalError:
        raise  # the database itself failed (disk full, gone): no document would fare better
    except Exception:
        written, offset = [], 0
        for p in prepared:
            n = len(p.chunks)
            try:
                store.write(conn, [p], vectors[offset:offset + n], settings.search, avgdl)
                written.append(p)
            except psycopg.OperationalError:
                raise
            except Exception as exc:
                report.failures.append(LoadFailure(p.document.uri, f"could not be stored: {exc}"))
            offset += n
    for p in written:
        if p.document.id in replacing:
            report.updated += 1
        else:
            report.added += 1
        report.pii.update(p.pii_counts)
        report.chunks += len(p.chunks)
        flagged = sum(len(c.instructions) for c in p.chunks)
        if flagged:
            report.notices.append(
                f"{Path(p.document.uri).name}: {flagged} sentence(s) address the assistant (e.g. \"ignore previous "
                "instructions\"); they are kept out of every prompt and marked in the sources panel")
    if on_progress:
        on_progress(len(prepared), sum(len(p.chunks) for p in written))
