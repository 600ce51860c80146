"""Sources that sync: a named folder whose documents follow it (``citewise sources add|list|sync|remove``).

``citewise ingest`` adds and updates but never forgets: a file deleted from its folder stayed searchable and cited.
A source remembers each file's size and modification time from its last successful ingest, so a sync:

- stats every file and reads only new or changed ones (an unchanged file costs a stat, not a read or an embedding);
- ingests those through the ordinary pipeline (same limits, sandbox, PII scrubbing; batches commit whole);
- then, in one transaction with the sync's record, deletes the documents of files that are gone or newly excluded,
  and scrubs their passages from stored answers (as ``citewise delete`` does).

A killed sync therefore leaves every document whole: what it ingested is kept and skipped next time, and the
deletions and the record land together or not at all. A folder that cannot be listed (unmounted, permissions)
deletes nothing: the sync records why and the documents stay. One sync per source runs at a time, across machines
(a PostgreSQL advisory lock). A file that fails to load keeps its previous document and is read again next time.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from core import db
from core.privacy import HoldError, check_source_hold, scrub_documents
from core.settings import Settings
from retrieval import store
from retrieval.embed import Embedder
from retrieval.ingest import IngestOptions, ingest
from retrieval.loaders import iter_files

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_EVERY = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SourceError(ValueError):
    """A source cannot be added, found or synced as asked; the message names the problem and the fix."""


@dataclass(frozen=True)
class Source:
    name: str
    location: str
    groups: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    every_s: int | None = None


@dataclass(frozen=True)
class SyncResult:
    source: str
    ok: bool
    result: str
    counts: dict[str, int]
    failures: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def parse_every(text: str | None) -> int | None:
    """``15m``, ``2h``, ``1d`` (at least a minute) as seconds; None for no schedule."""
    if not text:
        return None
    m = _EVERY.match(text.strip().lower())
    if not m or int(m.group(1)) * _UNIT[m.group(2)] < 60:
        raise SourceError(f"--every {text!r}: write a number and a unit of at least a minute, for example 15m, "
                          "2h or 1d")
    return int(m.group(1)) * _UNIT[m.group(2)]


def add(conn: psycopg.Connection, source: Source) -> Source:
    """Register a folder source. Refuses a name whose documents came from elsewhere: the first sync would delete
    them, since they are not in the folder."""
    if not NAME.match(source.name):
        raise SourceError(f"source name {source.name!r}: use letters, digits, '.', '_' or '-' (up to 63), starting "
                          "with a letter or digit")
    folder = Path(source.location).expanduser().resolve()
    if not folder.is_dir():
        raise SourceError(f"{source.location} is not a folder; give the path of a folder that exists")
    if conn.execute("SELECT 1 FROM sources WHERE name = %s", (source.name,)).fetchone():
        raise SourceError(f"a source named {source.name!r} exists; remove it first (citewise sources remove "
                          f"{source.name}) or pick another name")
    outside = conn.execute("SELECT uri FROM documents WHERE source = %s AND uri NOT LIKE %s LIMIT 1",
                           (source.name, str(folder).rstrip("/") + "/%")).fetchone()
    if outside:
        raise SourceError(f"documents of source {source.name!r} were ingested from outside {folder} (for example "
                          f"{outside[0]}); a sync would delete them. Pick another name, or delete them first "
                          f"(citewise delete --source {source.name})")
    made = Source(source.name, str(folder), source.groups, source.include, source.exclude, source.every_s)
    conn.execute("INSERT INTO sources (name, location, access_groups, include, exclude, every_s) "
                  "VALUES (%s, %s, %s, %s, %s, %s)", (made.name, made.location, list(made.groups),
                                                      list(made.include), list(made.exclude), made.every_s))
    return made


def get(conn: psycopg.Connection, name: str) -> Source:
    row = conn.execute("SELECT name, location, access_groups, include, exclude, every_s FROM sources "
                       "WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise SourceError(f"no source named {name!r}; see citewise sources list")
    return Source(row[0], row[1], tuple(row[2]), tuple(row[3]), tuple(row[4]), row[5])


def listing(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every source's state: last sync, its result and counts, failures with reasons, next run, documents held."""
    rows = conn.execute(
        "SELECT s.name, s.kind, s.location, s.access_groups, s.include, s.exclude, s.every_s, s.synced_at, s.result, "
        "s.counts, s.failures, s.seconds, (SELECT count(*) FROM documents d WHERE d.source = s.name), "
        "CASE WHEN s.every_s IS NULL THEN NULL ELSE coalesce(s.synced_at, s.created_at) "
        "+ make_interval(secs => s.every_s) END FROM sources s ORDER BY s.name").fetchall()
    keys = ("name", "kind", "location", "groups", "include", "exclude", "every_s", "synced_at", "result", "counts",
            "failures", "seconds", "documents", "next_run")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def remove(conn: psycopg.Connection, name: str, keep_documents: bool = False) -> int:
    """Forget a source and (unless ``keep_documents``) delete its documents, in one transaction; return how many
    documents went."""
    get(conn, name)
    with conn.transaction():
        gone = 0 if keep_documents else _delete_documents(conn, name, None)
        conn.execute("DELETE FROM sources WHERE name = %s", (name,))
    return gone


def _delete_documents(conn: psycopg.Connection, source: str, keep_uris: set[str] | None) -> int:
    """Delete the source's documents whose uri is not in ``keep_uris`` (all when None) and scrub them from answers."""
    check_source_hold(conn, source)
    if keep_uris is None:
        ids = [r[0] for r in conn.execute("DELETE FROM documents WHERE source = %s RETURNING id", (source,))]
    else:
        ids = [r[0] for r in conn.execute("DELETE FROM documents WHERE source = %s AND NOT (uri = ANY(%s)) "
                                          "RETURNING id", (source, sorted(keep_uris)))]
    scrub_documents(conn, ids)
    return len(ids)


def _selected(rel: str, src: Source) -> bool:
    if src.include and not any(fnmatch.fnmatch(rel, g) for g in src.include):
        return False
    return not any(fnmatch.fnmatch(rel, g) for g in src.exclude)


def scan(src: Source) -> dict[str, tuple[int, int]]:
    """The folder's selected files as {absolute path: (size, mtime_ns)}; raises SourceError when the folder itself
    cannot be listed (then nothing may be deleted)."""
    root = Path(src.location)
    if not root.is_dir():
        raise SourceError(f"{root} is not reachable (missing, unmounted or not a folder); nothing was deleted. "
                          "Mount or restore it, or change the source")
    try:
        os.listdir(root)
    except OSError as exc:
        raise SourceError(f"{root} cannot be listed ({exc.strerror or exc}); nothing was deleted. Fix its "
                          "permissions for the user citewise runs as") from None
    found: dict[str, tuple[int, int]] = {}
    for item in iter_files([root]):
        if not isinstance(item, Path) or item.suffix.lower() == ".jsonl":
            continue  # a JSONL corpus is one file of many documents: `citewise ingest` loads those
        if not _selected(item.relative_to(root).as_posix(), src):
            continue
        try:
            st = item.stat()
        except OSError:
            continue
        found[str(item.resolve())] = (st.st_size, st.st_mtime_ns)
    return found


def sync(url: str, embedder: Embedder, settings: Settings, name: str) -> SyncResult:
    """Bring the source's documents in line with its folder (see the module's docstring)."""
    started = time.monotonic()
    with db.connect(url, autocommit=True) as conn:
        src = get(conn, name)
        if not conn.execute("SELECT pg_try_advisory_lock(hashtext('citewise-source:' || %s))", (name,)).fetchone()[0]:
            raise SourceError(f"a sync of {name!r} is already running; wait for it to finish")
        try:
            return _sync_locked(conn, url, embedder, settings, src, started)
        finally:
            conn.execute("SELECT pg_advisory_unlock(hashtext('citewise-source:' || %s))", (name,))


def _sync_locked(conn: psycopg.Connection, url: str, embedder: Embedder, settings: Settings, src: Source,
                 started: float) -> SyncResult:
    try:
        files = scan(src)
    except SourceError as exc:
        return _record(conn, src, SyncResult(src.name, False, str(exc), {}, [], time.monotonic() - started))
    known = {p: (s, m) for p, s, m in conn.execute("SELECT path, size, mtime_ns FROM source_files WHERE source = %s",
                                                   (src.name,))}
    changed = sorted(p for p, stat in files.items() if known.get(p) != stat)
    report = ingest(url, embedder, [Path(p) for p in changed], settings,
                    IngestOptions(source=src.name, groups=src.groups)) if changed else None
    failed = {f.uri: f.reason for f in report.failures} if report else {}
    counts = {"files": len(files), "read": len(changed), "skipped": len(files) - len(changed),
              "added": report.added if report else 0, "updated": report.updated if report else 0,
              "failed": len(failed), "deleted": 0}
    failures = [{"file": p, "reason": r} for p, r in sorted(failed.items())]
    result = "ok"
    with conn.transaction():
        try:
            counts["deleted"] = _delete_documents(conn, src.name, set(files))
        except HoldError as exc:
            result = f"deletions kept: {exc}"
        conn.execute("DELETE FROM source_files WHERE source = %s AND NOT (path = ANY(%s))", (src.name, sorted(files)))
        for path in changed:
            if path not in failed:
                size, mtime = files[path]
                conn.execute("INSERT INTO source_files (source, path, size, mtime_ns) VALUES (%s, %s, %s, %s) "
                             "ON CONFLICT (source, path) DO UPDATE SET size = EXCLUDED.size, "
                             "mtime_ns = EXCLUDED.mtime_ns", (src.name, path, size, mtime))
        if failed and result == "ok":
            result = f"{len(failed)} file(s) failed; their previous documents are kept"
        out = SyncResult(src.name, True, result, counts, failures, time.monotonic() - started)
        _record(conn, src, out)
    if counts["deleted"]:
        store.reweight(conn, settings.search)  # the average length moved: keep BM25 weights exact
    return out


def _record(conn: psycopg.Connection, src: Source, res: SyncResult) -> SyncResult:
    conn.execute("UPDATE sources SET synced_at = now(), result = %s, counts = %s, failures = %s, seconds = %s "
                 "WHERE name = %s", (res.result, json.dumps(res.counts), json.dumps(res.failures), res.seconds,
                                     src.name))
    return res


def due(conn: psycopg.Connection) -> list[str]:
    """Sources whose schedule says they should sync now."""
    return [r[0] for r in conn.execute(
        "SELECT name FROM sources WHERE every_s IS NOT NULL AND "
        "coalesce(synced_at, created_at - make_interval(secs => every_s)) + make_interval(secs => every_s) <= now() "
        "ORDER BY name")]
