"""Backup and restore: the rollback plan for a bad re-index, a bad learned model, or a lost disk.

A backup is one file, a tar archive holding ``database.dump`` (``pg_dump`` custom format: schema, pgvector
embeddings, turns, feedback, everything) and ``manifest.json``: what is needed to use it — the schema version,
the embedding model and dimension the vectors came from, PostgreSQL and pgvector versions — and, per table, a
row count and a content hash. A restore goes into an empty database only, and is verified against the manifest:
the same counts and hashes, or it fails loudly.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from core import db, pgserver

FORMAT = 1
# a content hash per table, over the columns that make its rows what they are, in a stable order
HASHED = {
    "documents": "id || source || uri || title || coalesce(author, '') || metadata::text || access_groups::text",
    "chunks": "id || text || coalesce(embedding::text, '') || coalesce(keyword_vec::text, '')",
    "turns": "id::text || question || coalesce(answer, '') || coalesce(citations::text, '')",
    "feedback": "id::text || turn_id::text || value::text || coalesce(comment, '')",
}


class BackupError(RuntimeError):
    """A backup or restore could not be made or did not verify; the message says what and what to do."""


def _tool(name: str) -> str:
    found = pgserver.client_tool(name) or shutil.which(name)
    if not found:
        raise BackupError(f"{name} was not found; install the PostgreSQL client tools (or use the embedded server)")
    return found


def facts(conn: psycopg.Connection) -> dict[str, Any]:
    """Versions, the embedding model, and per-table row counts and content hashes."""
    tables: dict[str, Any] = {}
    for table, expr in HASHED.items():
        n, digest = conn.execute(f"SELECT count(*), md5(coalesce(string_agg({expr}, ',' ORDER BY id), '')) "
                                 f"FROM {table}").fetchone()
        tables[table] = {"rows": n, "md5": digest}
    model = conn.execute("SELECT model, dim FROM embedding_config").fetchone()
    return {"format": FORMAT, "created": datetime.now(UTC).isoformat(),
            "schema_version": conn.execute("SELECT max(version) FROM schema_migrations").fetchone()[0],
            "embedding_model": model[0] if model else None, "embedding_dim": model[1] if model else None,
            "postgresql": conn.execute("SHOW server_version").fetchone()[0],
            "pgvector": conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()[0],
            "tables": tables}


def backup(url: str, out: Path) -> dict[str, Any]:
    """Write the backup of the database at ``url`` to ``out``; return its manifest."""
    with db.connect(url) as conn:
        manifest = facts(conn)
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "database.dump"
        proc = subprocess.run([_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={dump}", url],
                              capture_output=True, text=True)
        if proc.returncode:
            raise BackupError(f"pg_dump failed: {proc.stderr.strip()[-500:]}")
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, "w") as tar:
            tar.add(dump, "database.dump")
            data = json.dumps(manifest, indent=2).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        partial.replace(out)  # a backup file is whole or absent
    return manifest


def _held(conn: psycopg.Connection) -> int:
    tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in HASHED if t in tables)


def restore(archive: Path, url: str) -> dict[str, Any]:
    """Restore ``archive`` into the empty database at ``url`` and verify it; return the manifest."""
    try:
        with tarfile.open(archive) as tar:
            manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
            with tempfile.TemporaryDirectory() as tmp:
                tar.extract("database.dump", tmp, filter="data")
                with psycopg.connect(url, autocommit=True) as conn:
                    if (held := _held(conn)) > 0:
                        raise BackupError(f"the database at {db.mask_url(url)} is not empty ({held} rows); restore "
                                          "into a new one (set CITEWISE_HOME or CITEWISE_DATABASE_URL to a fresh one)")
                    conn.execute("DROP SCHEMA public CASCADE")  # empty citewise tables from a migration, if any
                    conn.execute("CREATE SCHEMA public")
                proc = subprocess.run([_tool("pg_restore"), "--no-owner", "--exit-on-error", f"--dbname={url}",
                                       str(Path(tmp) / "database.dump")], capture_output=True, text=True)
    except (tarfile.TarError, KeyError, json.JSONDecodeError) as exc:
        raise BackupError(f"{archive} is not a citewise backup ({exc}); make one with `citewise backup FILE`") from None
    if proc.returncode:
        raise BackupError(f"pg_restore failed: {proc.stderr.strip()[-500:]}")
    with db.connect(url) as conn:
        restored = facts(conn)
    if restored["tables"] != manifest["tables"]:
        raise BackupError(f"the restore does not match its backup: {restored['tables']} != {manifest['tables']}")
    return manifest
