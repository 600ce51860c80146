"""Distributed ingest on PostgreSQL's own queue: ``citewise ingest --queue`` enqueues files, ``citewise worker``
ingests them. Any number of workers on any number of machines share one database and need nothing else.

The queue is procrastinate's (jobs are rows locked with ``SELECT … FOR UPDATE SKIP LOCKED``, woken by LISTEN/NOTIFY),
so no broker is added. One job is one file, named by its path: workers on other machines must see the same path
(a shared mount). Exactly once holds because a job is locked to one worker while it runs and ingest itself is
idempotent (ids are content hashes; a batch is one transaction): a job retried after its worker was killed
finds the documents that worker committed, skips them as unchanged, and writes the rest whole.

A worker killed with SIGKILL cannot say so. Every worker writes a heartbeat; a job whose worker has been silent
longer than ``CITEWISE_WORKER_STALLED_AFTER`` is put back in the queue by any live worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
from procrastinate import exceptions as pc_exceptions
from procrastinate.schema import SchemaManager

from core import db
from core.settings import Settings
from retrieval.embed import Embedder
from retrieval.ingest import IngestOptions, IngestStopped, default_source
from retrieval.loaders import LoadFailure, iter_files

QUEUE = "ingest"
TASK = "citewise.ingest_file"
SYNC_TASK = "citewise.sync_due_sources"
SYNC_QUEUE = "sources"  # its own queue: the ingest queue's counts stay the files', and a worker serves both
_LOCK_SCHEMA = 8317003
log = logging.getLogger("citewise.worker")



class JobFailed(RuntimeError):
    """A file that cannot be ingested (unreadable, unsupported, empty); retrying would fail the same way."""


@dataclass
class _Worker:
    """What one worker process loads once and every job it runs uses."""

    url: str
    settings: Settings
    embedder: Embedder


_state: dict[str, _Worker] = {}


def ingest_file(path: str, source: str, groups: list[str], metadata: dict[str, Any], author: str | None) -> None:
    """Ingest one file (all its documents, for JSONL) exactly as ``citewise ingest`` would."""
    from retrieval.ingest import ingest

    worker = _state["worker"]
    opts = IngestOptions(source=source, metadata=metadata, groups=tuple(groups), author=author)
    report = ingest(worker.url, worker.embedder, [Path(path)], worker.settings, opts)
    print(f"worker {os.getpid()} ingested {path}: added {report.added}, updated {report.updated}, "
          f"unchanged {report.unchanged}, failed {report.failed}, chunks {report.chunks}", flush=True)
    if worker.settings.replica_urls:
        from core.replicas import wait_caught_up

        for replica in wait_caught_up(worker.url, worker.settings.replica_urls):
            log.warning("read replica %s has not replayed %s yet", replica, path)
    if report.failures:
        raise JobFailed("; ".join(f"{f.uri}: {f.reason}" for f in report.failures))


def sync_due_sources(timestamp: int) -> None:
    """Sync every source whose schedule is due (``citewise sources add --every``). Deferred each minute by the
    workers' periodic deferrer, once per minute however many workers run (procrastinate records each tick); a
    source another worker is still syncing is skipped (its advisory lock), so one sync per source runs at a time."""
    from retrieval import sources

    worker = _state["worker"]
    with db.connect(worker.url) as conn:
        names = sources.due(conn)
    for name in names:
        try:
            res = sources.sync(worker.url, worker.embedder, worker.settings, name)
        except sources.SourceError as exc:
            log.info("source %s skipped: %s", name, exc)
            continue
        except Exception:  # one source's failure (the database went away mid-sync) must not starve the others
            log.exception("source %s failed to sync; it is tried again at its next turn", name)
            continue
        print(f"worker {os.getpid()} synced source {name}: {res.result} {res.counts}", flush=True)


def make_app(url: str, max_attempts: int = 3) -> procrastinate.App:
    """An app bound to ``url`` with the ingest task and the sources' periodic sync; a job the database failed
    (gone, disk full) is retried."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
    retry = procrastinate.RetryStrategy(max_attempts=max_attempts, wait=2,
                                        retry_exceptions={IngestStopped, psycopg.OperationalError})
    app.task(name=TASK, queue=QUEUE, retry=retry)(ingest_file)
    sync_task = app.task(name=SYNC_TASK, queue=SYNC_QUEUE, queueing_lock=SYNC_TASK)(sync_due_sources)
    app.periodic(cron="* * * * *", periodic_id="sources")(sync_task)
    return app


def ensure_schema(url: str) -> None:
    """Create procrastinate's tables on first use (its own schema, versioned by the pinned package)."""
    with db.connect(url, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_SCHEMA,))
        if conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0] is None:
            conn.execute(SchemaManager.get_schema())  # type: ignore[arg-type]


@dataclass(frozen=True)
class Enqueued:
    queued: int
    already_queued: int
    failures: list[LoadFailure]


def enqueue(url: str, paths: Iterable[Path], opts: IngestOptions) -> Enqueued:
    """One job per file. A file already waiting in the queue is not queued twice (procrastinate's queueing lock)."""
    ensure_schema(url)
    app = make_app(url)
    queued = already = 0
    failures: list[LoadFailure] = []
    with app.open():
        for root in paths:
            source = opts.source or default_source(root)
            for item in iter_files([root]):
                if isinstance(item, LoadFailure):
                    failures.append(item)
                    continue
                where = str(item.resolve())
                try:
                    app.configure_task(TASK, lock=f"{source}:{where}", queueing_lock=f"{source}:{where}").defer(
                        path=where, source=source, groups=list(opts.groups), metadata=opts.metadata,
                        author=opts.author)
                    queued += 1
                except pc_exceptions.AlreadyEnqueued:
                    already += 1
    return Enqueued(queued, already, failures)


def status(url: str) -> dict[str, int]:
    """Jobs in the ingest queue by status (todo, doing, succeeded, failed…)."""
    ensure_schema(url)
    with db.connect(url) as conn:
        rows = conn.execute("SELECT status::text, count(*) FROM procrastinate_jobs WHERE queue_name = %s "
                            "GROUP BY status ORDER BY status", (QUEUE,)).fetchall()
    return {s: int(n) for s, n in rows}


async def _requeue_stalled(app: procrastinate.App, settings: Settings, stop: asyncio.Event) -> None:
    """Put back the jobs of workers silent for too long (killed, or their machine lost)."""
    every = max(settings.queue.heartbeat_s, 0.5)
    while not stop.is_set():
        stalled = [job for q in (QUEUE, SYNC_QUEUE) for job in await app.job_manager.get_stalled_jobs(
            queue=q, seconds_since_heartbeat=settings.queue.stalled_s)]
        for job in stalled:  # a sync job left "doing" would also hold its queueing lock, stopping every schedule
            log.warning("job %s (%s) was left by a silent worker; queued again", job.id, job.task_kwargs.get("path"))
            print(f"worker {os.getpid()} requeued stalled job {job.id} ({job.task_kwargs.get('path')})", flush=True)
            await app.job_manager.retry_job(job)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


def alive_workers(url: str, settings: Settings) -> int:
    """Workers whose heartbeat is fresher than the stalled bound (any machine)."""
    ensure_schema(url)
    with db.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - "
                            "make_interval(secs => %s)", (settings.queue.stalled_s,)).fetchone()[0]


def start_background_worker(url: str, settings: Settings, embedder: Embedder) -> threading.Thread | None:
    """For ``citewise serve``: one worker in a daemon thread when no other worker is alive (and
    ``CITEWISE_SERVE_WORKER`` allows it), so scheduled source syncs and queued ingests run on the embedded default
    too. It stops with the process; a job it held is handed on by the stalled-worker check."""
    if not settings.queue.serve_worker or alive_workers(url, settings):
        return None
    thread = threading.Thread(target=run_worker, args=(url, settings, embedder), kwargs={"in_thread": True},
                              name="citewise-worker", daemon=True)
    thread.start()
    return thread


def run_worker(url: str, settings: Settings, embedder: Embedder, *, until_empty: bool = False,
               concurrency: int = 1, in_thread: bool = False) -> None:
    """Process ingest jobs until stopped (SIGINT/SIGTERM finish the job in hand), or until the queue is empty."""
    ensure_schema(url)
    _state["worker"] = _Worker(url, settings, embedder)
    app = make_app(url, settings.queue.max_attempts)

    async def main() -> None:
        stop = asyncio.Event()
        async with app.open_async():
            requeue = asyncio.create_task(_requeue_stalled(app, settings, stop))
            try:
                await app.run_worker_async(queues=[QUEUE, SYNC_QUEUE], concurrency=concurrency, wait=not until_empty,
                                           update_heartbeat_interval=settings.queue.heartbeat_s,
                                           stalled_worker_timeout=settings.queue.stalled_s,
                                           delete_jobs="never", install_signal_handlers=not in_thread)
            finally:
                stop.set()
                await requeue

    asyncio.run(main())
