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

import contextlib
import fnmatch
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
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
from retrieval.pii import scrub
from retrieval.sources_git import GitError, changed_since, checkout, is_git_location, link

_RETRY = -1  # a source_files row's mtime_ns when its last read failed: read it again
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_EVERY = re.compile(r"^(\d+)\s*([smhd])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class SourceError(ValueError):
    """A source cannot be added, found or synced as asked; the message names the problem and the fix."""


@dataclass(frozen=True)
class Source:
    name: str
    location: str  # a folder's absolute path; a repository's path or clone URL
    groups: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    every_s: int | None = None
    kind: str = "folder"
    branch: str | None = None
    commit: str | None = None  # git: the last synced commit


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


def add(conn: psycopg.Connection, source: Source, home: Path | None = None) -> Source:
    """Register a source: a folder, or a git repository when the location is a clone URL or a repository's top
    (or a branch is given; it is cloned under ``home`` at once, so a wrong URL or branch fails here). Refuses a
    name whose documents came from elsewhere: the first sync would delete them."""
    if not NAME.match(source.name):
        raise SourceError(f"source name {source.name!r}: use letters, digits, '.', '_' or '-' (up to 63), starting "
                          "with a letter or digit")
    if conn.execute("SELECT 1 FROM sources WHERE name = %s", (source.name,)).fetchone():
        raise SourceError(f"a source named {source.name!r} exists; remove it first (citewise sources remove "
                          f"{source.name}) or pick another name")
    other = next((k for k in KINDS.values() if source.location.startswith(k.prefix)), None)
    if other is not None:
        try:
            location = other.canonical(source.location)
        except ValueError as exc:
            raise SourceError(str(exc)) from None
        made = replace(source, location=location, kind=other.name)
        prefix = other.uri_prefix(location) + "%"
    elif source.branch or is_git_location(source.location):
        local = Path(source.location).expanduser()
        location = str(local.resolve()) if local.exists() else source.location
        try:
            branch, _ = checkout(location, source.branch, clone_dir(home or Path("."), source.name))
        except GitError as exc:
            raise SourceError(f"{source.location} could not be cloned ({exc}); check the URL or path, the branch, "
                              "and that this machine may read it") from None
        made = replace(source, location=location, kind="git", branch=branch)
        prefix = None
    else:
        folder = Path(source.location).expanduser().resolve()
        if not folder.is_dir():
            raise SourceError(f"{source.location} is not a folder; give the path of a folder that exists")
        made = replace(source, location=str(folder), kind="folder")
        prefix = str(folder).rstrip("/") + "/%"
    outside = conn.execute("SELECT uri FROM documents WHERE source = %s AND (%s::text IS NULL OR uri NOT LIKE %s) "
                           "LIMIT 1", (made.name, prefix, prefix)).fetchone()
    if outside:
        raise SourceError(f"documents of source {made.name!r} were ingested from outside {made.location} (for "
                          f"example {outside[0]}); a sync would delete them. Pick another name, or delete them "
                          f"first (citewise delete --source {made.name})")
    conn.execute("INSERT INTO sources (name, kind, location, branch, access_groups, include, exclude, every_s) "
                 "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                 (made.name, made.kind, made.location, made.branch, list(made.groups), list(made.include),
                  list(made.exclude), made.every_s))
    return made


def clone_dir(home: Path, name: str) -> Path:
    """Where this machine keeps a git source's clone."""
    return home / "sources" / name


def get(conn: psycopg.Connection, name: str) -> Source:
    row = conn.execute("SELECT name, location, access_groups, include, exclude, every_s, kind, branch, commit "
                       "FROM sources WHERE name = %s", (name,)).fetchone()
    if row is None:
        raise SourceError(f"no source named {name!r}; see citewise sources list")
    return Source(row[0], row[1], tuple(row[2]), tuple(row[3]), tuple(row[4]), row[5], row[6], row[7], row[8])


def listing(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every source's state: last sync, its result and counts, failures with reasons, next run, documents held."""
    rows = conn.execute(
        "SELECT s.name, s.kind, s.location, s.branch, s.commit, s.access_groups, s.include, s.exclude, s.every_s, "
        "s.synced_at, s.result, "
        "s.counts, s.failures, s.seconds, (SELECT count(*) FROM documents d WHERE d.source = s.name), "
        "CASE WHEN s.every_s IS NULL THEN NULL ELSE coalesce(s.synced_at, s.created_at) "
        "+ make_interval(secs => s.every_s) END FROM sources s ORDER BY s.name").fetchall()
    keys = ("name", "kind", "location", "branch", "commit", "groups", "include", "exclude", "every_s", "synced_at",
            "result", "counts",
            "failures", "seconds", "documents", "next_run")
    out = [dict(zip(keys, r, strict=True)) for r in rows]
    for row in out:  # a clone URL may carry a token: never show it
        row["location"] = masked(row["location"])
    return out


def masked(text: str) -> str:
    """``https://user:token@host/…`` → ``https://***@host/…`` wherever it appears (locations, git's messages)."""
    return re.sub(r"(://)[^/@\s]+@", r"\1***@", text)


def remove(conn: psycopg.Connection, name: str, keep_documents: bool = False, home: Path | None = None) -> int:
    """Forget a source and (unless ``keep_documents``) delete its documents, in one transaction, and this
    machine's clone of a git source; return how many documents went."""
    src = get(conn, name)
    with _locked(conn, name):
        with conn.transaction():
            gone = 0 if keep_documents else store.delete(conn, source=name)
            conn.execute("DELETE FROM sources WHERE name = %s", (name,))
        if src.kind == "git" and home is not None:
            shutil.rmtree(clone_dir(home, name), ignore_errors=True)
    return gone


@contextlib.contextmanager
def _locked(conn: psycopg.Connection, name: str) -> Iterator[None]:
    """The source's advisory lock, held by this session: one sync (or removal) of a source at a time, anywhere."""
    if not conn.execute("SELECT pg_try_advisory_lock(hashtext('citewise-source:' || %s))", (name,)).fetchone()[0]:
        raise SourceError(f"a sync of {name!r} is already running; wait for it to finish")
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(hashtext('citewise-source:' || %s))", (name,))


def _delete_documents(conn: psycopg.Connection, source: str, keep_uris: set[str]) -> int:
    """Delete the source's documents whose uri is not in ``keep_uris`` and scrub them from answers, except renamed
    ones (their text is still there, under another name: their moves are recorded first). A legal hold refuses."""
    check_source_hold(conn, source)
    moved = _record_moves(conn, source, keep_uris)
    ids = [r[0] for r in conn.execute("DELETE FROM documents WHERE source = %s AND NOT (uri = ANY(%s)) "
                                      "RETURNING id", (source, sorted(keep_uris)))]
    scrub_documents(conn, [i for i in ids if i not in moved])
    return len(ids)


def _record_moves(conn: psycopg.Connection, source: str, keep_uris: set[str]) -> frozenset[str]:
    """Documents about to go whose whole text a kept document has under another name (a renamed file): map each old
    chunk to the new one with the same ordinal, so ratings follow the passage; return the old documents' ids."""
    pairs = conn.execute(
        "WITH sig AS (SELECT d.id, d.uri = ANY(%(keep)s) AS kept, "
        "  string_agg(c.text_hash, ',' ORDER BY c.ordinal) AS sig FROM documents d JOIN chunks c "
        "  ON c.document_id = d.id WHERE d.source = %(s)s GROUP BY d.id, d.uri) "
        "SELECT DISTINCT ON (o.id) o.id, n.id FROM sig o JOIN sig n ON o.sig = n.sig AND NOT o.kept AND n.kept "
        "ORDER BY o.id, n.id", {"s": source, "keep": sorted(keep_uris)}).fetchall()
    for old, new in pairs:
        conn.execute("INSERT INTO chunk_moves (old_id, new_id, old_document_id, new_document_id) "
                     "SELECT o.id, n.id, o.document_id, n.document_id FROM chunks o JOIN chunks n "
                     "ON n.document_id = %s AND n.ordinal = o.ordinal WHERE o.document_id = %s "
                     "ON CONFLICT (old_id) DO UPDATE SET new_id = EXCLUDED.new_id, "
                     "new_document_id = EXCLUDED.new_document_id, moved_at = now()", (new, old))
    return frozenset(old for old, _ in pairs)


def _selected(rel: str, src: Source) -> bool:
    if src.include and not any(fnmatch.fnmatch(rel, g) for g in src.include):
        return False
    return not any(fnmatch.fnmatch(rel, g) for g in src.exclude)


def scan(src: Source, root: Path, contained: bool = False) -> dict[str, tuple[int, int]]:
    """The folder's selected files as {absolute path: (size, mtime_ns)}; raises SourceError when the folder or any
    folder under it cannot be listed (then nothing may be deleted). ``contained``: skip links that lead outside
    ``root`` (a repository's content is not the operator's choice; a link to /etc must not be read)."""
    if not root.is_dir():
        raise SourceError(f"{root} is not reachable (missing, unmounted or not a folder); nothing was deleted. "
                          "Mount or restore it, or change the source")
    found: dict[str, tuple[int, int]] = {}

    def unlistable(exc: OSError) -> None:
        raise SourceError(f"{exc.filename or root} cannot be listed ({exc.strerror or exc}); nothing was deleted. "
                          "Fix its permissions or mount, or exclude it (--exclude)")

    inside = str(root.resolve()).rstrip("/") + "/"
    for item in iter_files([root], on_error=unlistable):
        if not isinstance(item, Path) or item.suffix.lower() == ".jsonl":
            continue  # a JSONL corpus is one file of many documents: `citewise ingest` loads those
        if not _selected(item.relative_to(root).as_posix(), src):
            continue
        resolved = item.resolve()
        if contained and not str(resolved).startswith(inside):
            continue
        try:
            st = item.stat()
        except OSError:
            continue
        found[str(resolved)] = (st.st_size, st.st_mtime_ns)
    return found


def sync(url: str, embedder: Embedder, settings: Settings, name: str) -> SyncResult:
    """Bring the source's documents in line with its folder (see the module's docstring)."""
    started = time.monotonic()
    with db.connect(url, autocommit=True) as conn:
        src = get(conn, name)
        with _locked(conn, name):
            return _sync_locked(conn, url, embedder, settings, src, started)


class SourceUnreachable(RuntimeError):
    """A kind's remote refused or could not be reached; nothing is deleted."""


@dataclass(frozen=True)
class Listing:
    """What a sync compares with what is stored: each item's key and its "stat" (for files: size and modification
    time; for a chat channel's threads: replies and the last reply's time), the commit synced (git), the keys git says
    changed, and how to turn the keys to read into files for the ingest pipeline."""

    stats: dict[str, tuple[int, int]]
    materialize: Callable[[list[str], Path], dict[str, Path]]
    commit: str | None = None
    hint: set[str] | None = None
    identity: Callable[[str], tuple[str, dict[str, Any]]] | None = None
    groups: tuple[str, ...] = ()


def _sync_locked(conn: psycopg.Connection, url: str, embedder: Embedder, settings: Settings, src: Source,
                 started: float) -> SyncResult:
    def failed_run(why: str) -> SyncResult:
        return _record(conn, src, SyncResult(src.name, False, masked(why), {}, [], time.monotonic() - started), None)

    known = {k: ((s, m), u) for k, s, m, u in conn.execute(
        "SELECT path, size, mtime_ns, uri FROM source_files WHERE source = %s", (src.name,))}
    with tempfile.TemporaryDirectory(prefix="citewise-sync-") as tmp:
        try:
            seen = _list(conn, src, settings)
            if known and not seen.stats:
                raise SourceError(f"{masked(src.location)} lists nothing now, where {len(known)} item(s) synced "
                                  "before: is it unmounted or emptied by mistake? Nothing was deleted. If it was "
                                  f"emptied on purpose, remove the source (citewise sources remove {src.name})")
            changed = sorted(k for k, stat in seen.stats.items() if k not in known or known[k][0][1] == _RETRY or (
                known[k][0] != stat if seen.hint is None else k in seen.hint))
            paths = {k: p.resolve() for k, p in seen.materialize(changed, Path(tmp).resolve()).items()}
        except SourceError as exc:
            return failed_run(str(exc))
        except (GitError, SourceUnreachable) as exc:
            return failed_run(f"{src.location} is not reachable ({exc}); nothing was deleted")
        per_file = {str(paths[k]): seen.identity(k) for k in changed} if seen.identity else {}
        report = ingest(url, embedder, [paths[k] for k in changed], settings,
                        IngestOptions(source=src.name, groups=tuple(dict.fromkeys(src.groups + seen.groups)),
                                      per_file=per_file)) if changed else None
    # a failure names the path the ingest was given, or (past loading) the document's uri as stored
    by_path = {str(paths[k]): k for k in changed}
    by_path |= {_stored(per_file[str(paths[k])][0] if per_file else str(paths[k]), settings): k for k in changed}
    failed = {by_path.get(f.uri, f.uri): f.reason for f in report.failures} if report else {}
    fresh = [k for k in changed if k not in failed]
    counts = {"files": len(seen.stats), "read": len(changed), "skipped": len(seen.stats) - len(changed),
              "added": sum(k not in known for k in fresh),
              "updated": max(0, sum(k in known for k in fresh) - (report.unchanged if report else 0)),
              "failed": len(failed), "deleted": len(set(known) - set(seen.stats))}
    failures = [{"file": k, "reason": r} for k, r in sorted(failed.items())]
    result = "ok" if not failed else f"{len(failed)} file(s) failed; their previous documents are kept"
    with conn.transaction():
        conn.execute("DELETE FROM source_files WHERE source = %s AND NOT (path = ANY(%s))",
                     (src.name, sorted(seen.stats)))
        for k in failed:  # a known item that failed is read again next time, whatever its stat or git says
            conn.execute("UPDATE source_files SET mtime_ns = %s WHERE source = %s AND path = %s", (_RETRY, src.name, k))
        for k in fresh:
            conn.execute("INSERT INTO source_files (source, path, size, mtime_ns, uri) VALUES (%s, %s, %s, %s, %s) "
                         "ON CONFLICT (source, path) DO UPDATE SET size = EXCLUDED.size, mtime_ns = "
                         "EXCLUDED.mtime_ns, uri = EXCLUDED.uri",
                         (src.name, k, *seen.stats[k], per_file[str(paths[k])][0] if per_file else str(paths[k])))
        stored = {r[0] for r in conn.execute("SELECT uri FROM source_files WHERE source = %s", (src.name,))}
        keep = {_stored(u, settings) for u in stored}
        try:
            removed = _delete_documents(conn, src.name, keep)
        except HoldError as exc:
            removed = 0
            result = f"deletions kept: {exc}"
        out = SyncResult(src.name, True, result, counts, failures, time.monotonic() - started)
        _record(conn, src, out, seen.commit)
    if removed:
        store.reweight(conn, settings.search)  # the average length moved: keep BM25 weights exact
    return out


def _list(conn: psycopg.Connection, src: Source, settings: Settings) -> Listing:
    """The source's items now: a folder's files (keyed by absolute path), a git branch's files at its head (keyed
    by path in the repository), or what a kind registered by another layer lists (a chat channel's threads)."""
    if src.kind in KINDS:
        return KINDS[src.kind].listing(conn, src, settings)
    if src.kind == "folder":
        files = scan(src, Path(src.location))
        return Listing(files, lambda keys, _tmp: {k: Path(k) for k in keys})
    clone = clone_dir(settings.home, src.name).resolve()
    _, commit = checkout(src.location, src.branch, clone)
    files = {Path(os.path.relpath(p, clone)).as_posix(): stat for p, stat in scan(src, clone, contained=True).items()}
    return Listing(files, lambda keys, _tmp: {k: clone / k for k in keys}, commit,
                    changed_since(clone, src.commit, commit), lambda k: _identity(src, k, commit))


def _identity(src: Source, rel: str, commit: str) -> tuple[str, dict[str, Any]]:
    """A git file's uri (``path@commit``) and metadata (commit, path, and the web link when the host is known)."""
    meta: dict[str, Any] = {"commit": commit, "path": rel}
    if url := link(src.location, commit, rel):
        meta["url"] = url
    return f"{rel}@{commit[:12]}", meta


def _stored(uri: str, settings: Settings) -> str:
    """A uri as the ingest stored it: it scrubs personal data from every string, paths included."""
    return scrub(uri)[0] if settings.ingest.scrub_pii else uri


def _record(conn: psycopg.Connection, src: Source, res: SyncResult, commit: str | None) -> SyncResult:
    conn.execute("UPDATE sources SET synced_at = now(), result = %s, counts = %s, failures = %s, seconds = %s, "
                 "commit = coalesce(%s, commit) WHERE name = %s",
                 (res.result, json.dumps(res.counts), json.dumps(res.failures), res.seconds, commit, src.name))
    return res


@dataclass(frozen=True)
class Kind:
    """A kind of source that a layer above adds (a chat door adds its channels): locations
    starting with ``prefix`` are its own; ``canonical`` checks and normalises one (ValueError with the fix);
    ``uri_prefix`` is what its documents' uris start with; ``listing`` lists its items for a sync."""

    name: str
    prefix: str
    canonical: Callable[[str], str]
    uri_prefix: Callable[[str], str]
    listing: Callable[[psycopg.Connection, Source, Settings], Listing]


KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> None:
    KINDS[kind.name] = kind


def due(conn: psycopg.Connection) -> list[str]:
    """Sources whose schedule says they should sync now."""
    return [r[0] for r in conn.execute(
        "SELECT name FROM sources WHERE every_s IS NOT NULL AND "
        "coalesce(synced_at, created_at - make_interval(secs => every_s)) + make_interval(secs => every_s) <= now() "
        "ORDER BY name")]
