"""The ingest pipeline: read → classify → batch → embed → write → re-weight, in batches.

The stages live in :mod:`retrieval.ingest_stages`, one typed function each, frozen records between them, as the
answer pipeline's do (chat.chain); :func:`ingest` only composes them, and one tally keeps what the user is told
(the report, the progress callback). Writing a batch overlaps with embedding the next one (a single writer
thread, its own connection), so the pipeline runs at close to the embedding model's own speed. Each batch
commits as one transaction: a crash or Ctrl-C leaves whole documents or none, and a re-run skips what was
committed (ids are content hashes). After the writes, chunks whose BM25 weights drifted are re-weighted.
"""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from core import db
from core.settings import SearchSettings, Settings
from retrieval import store
from retrieval.embed import Embedder
from retrieval.ingest_stages import (
    Classified,
    Embedded,
    IngestOptions,
    Loaded,
    Written,
    batches,
    classify,
    default_source,
    embed,
    read,
    write,
)
from retrieval.loaders import LoadFailure, iter_files

__all__ = ["IngestOptions", "IngestReport", "IngestStopped", "count_inputs", "default_source", "ingest"]

_CLASSIFY_GROUP = 64  # documents compared with the store in one query


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
    tally = _Tally(on_progress)
    with _connections(url) as (reader, writer):
        store.ensure_model(reader, embedder.name, embedder.dim)
        try:
            with _Writer(writer, settings.search, tally) as writing:
                loaded = _distinct(tally.read(read(paths, opts, settings)))
                classified = (tally.classified(classify(reader, group, settings.chunk))
                              for group in _groups(loaded, _CLASSIFY_GROUP))
                for batch in batches(classified, opts.batch_chunks):
                    writing.submit(tally.embedded(embed(reader, embedder, batch)))
                writing.wait()
            if tally.report.added or tally.report.updated:
                tally.report.reweighted = store.reweight(writer, settings.search)
        except psycopg.OperationalError as exc:
            raise _stopped(exc, settings, tally.done()) from None
    return tally.done()


class _Tally:
    """The report and the progress callback, kept as the stages' records go by (the writes' from the writer
    thread, as each batch commits)."""

    def __init__(self, on_progress: Callable[[int, int], None] | None) -> None:
        self.report = IngestReport()
        self._on_progress = on_progress or (lambda documents, chunks: None)
        self._started = time.perf_counter()

    def read(self, items: Iterable[Loaded | LoadFailure]) -> Iterator[Loaded]:
        for item in items:
            if isinstance(item, LoadFailure):
                self.report.failures.append(item)
                continue
            if item.notice:
                self.report.notices.append(item.notice)
            yield item

    def classified(self, c: Classified) -> Classified:
        self.report.unchanged += c.unchanged
        for _ in range(c.unchanged):
            self._on_progress(1, 0)
        self.report.failures.extend(c.failures)
        return c

    def embedded(self, e: Embedded) -> Embedded:
        self.report.embedded += e.fresh
        return e

    def written(self, w: Written) -> None:
        report = self.report
        report.failures.extend(w.failures)
        for p in w.stored:
            if p.document.id in w.replacing:
                report.updated += 1
            else:
                report.added += 1
            report.pii.update(p.pii_counts)
            report.chunks += len(p.chunks)
            flagged = sum(len(c.instructions) for c in p.chunks)
            if flagged:
                report.notices.append(
                    f"{Path(p.document.uri).name}: {flagged} sentence(s) address the assistant (e.g. \"ignore "
                    "previous instructions\"); they are kept out of every prompt and marked in the sources panel")
        self._on_progress(w.documents, sum(len(p.chunks) for p in w.stored))

    def done(self) -> IngestReport:
        self.report.seconds = time.perf_counter() - self._started
        return self.report


class _Writer:
    """The write stage on its own thread and connection, one batch in flight: writing batch n overlaps embedding
    batch n+1. Leaving waits for the write in flight, so even Ctrl-C ends on a committed (or rolled back) batch."""

    def __init__(self, conn: psycopg.Connection, search: SearchSettings, tally: _Tally) -> None:
        self._conn, self._search, self._tally = conn, search, tally
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="citewise-writer")
        self._pending: Future | None = None

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)

    def submit(self, embedded: Embedded) -> None:
        self.wait()
        self._pending = self._pool.submit(lambda: self._tally.written(write(self._conn, embedded, self._search)))

    def wait(self) -> None:
        """Wait for the write in flight; its failure (a database that stopped taking writes) is raised here."""
        if self._pending is not None:
            self._pending.result()


def _distinct(loaded: Iterable[Loaded]) -> Iterator[Loaded]:
    """The same file named twice in one run is ingested once."""
    seen: set[tuple[str, str]] = set()
    for x in loaded:
        key = (x.document.source, x.document.uri)
        if key not in seen:
            seen.add(key)
            yield x


def _groups(loaded: Iterable[Loaded], size: int) -> Iterator[list[Loaded]]:
    group: list[Loaded] = []
    for x in loaded:
        group.append(x)
        if len(group) >= size:
            yield group
            group = []
    yield group  # possibly empty, as classify accepts


@contextlib.contextmanager
def _connections(url: str) -> Iterator[tuple[psycopg.Connection, psycopg.Connection]]:
    """A reader (comparing, reusing embeddings) and a writer: the writer thread's own connection."""
    reader = db.connect(url, autocommit=True)
    writer = db.connect(url, autocommit=True)
    try:
        yield reader, writer
    finally:
        for conn in (reader, writer):
            with contextlib.suppress(psycopg.Error):
                conn.close()
