"""Loaders: files and folders to :class:`RawDocument` records, with a clear reason for every failure.

A loader never raises for one bad file: it yields a :class:`LoadFailure` and the ingest goes on.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retrieval.clean import html_to_text, normalize

SUPPORTED = {".md": "markdown", ".markdown": "markdown", ".txt": "text", ".text": "text", ".rst": "text",
             ".html": "html", ".htm": "html", ".pdf": "pdf", ".jsonl": "jsonl"}


@dataclass(frozen=True)
class RawDocument:
    """A loaded, cleaned document before PII scrubbing and source assignment."""

    uri: str
    text: str
    title: str
    created_at: datetime | None = None
    updated_at: datetime | None = None
    author: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadFailure:
    uri: str
    reason: str


class LoadError(Exception):
    """One file cannot be loaded; the message says why and, where there is one, what to do."""


@dataclass(frozen=True)
class Limits:
    """Per-file budgets (settings): size, PDF pages, and the time and memory a PDF or HTML parse may take."""

    max_bytes: int = 50_000_000
    max_pages: int = 2000
    timeout_s: float = 60.0
    memory_mb: float = 1024.0


def iter_files(paths: list[Path], on_error: Callable[[OSError], None] | None = None) -> Iterator[Path | LoadFailure]:
    """Every file under ``paths`` (recursively, symlink loops safe, hidden entries skipped), sorted. A folder that
    cannot be listed is skipped unless ``on_error`` raises (a synced source must not read it as emptied)."""
    for root in paths:
        if not root.exists():
            yield LoadFailure(str(root), "no such file or directory")
            continue
        if root.is_file():
            yield root
            continue
        seen: set[tuple[int, int]] = set()
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=on_error):
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if not name.startswith("."):
                    yield Path(dirpath) / name


def _decode(data: bytes) -> tuple[str, str]:
    """The text and the encoding it was read with (utf-16, utf-8, or windows-1252 as the fallback)."""
    if b"\x00" in data[:8192] and not data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise LoadError("looks like a binary file (NUL bytes), not text; convert it to text or remove it")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), "utf-16"
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError as exc:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise LoadError(
                f"is not valid UTF-8 (byte {exc.start}) nor Windows-1252; re-save it as UTF-8 "
                "(for example: iconv -f LATIN1 -t UTF-8)"
            ) from None
        return text, "windows-1252"


def _file_times(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)


def _markdown_title(text: str, fallback: str) -> str:
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return fallback


_FRONT = re.compile(r"\A---[ \t]*\n(.{0,4000}?)\n---[ \t]*(\n|\Z)", re.DOTALL)
_FRONT_LINE = re.compile(r"^([A-Za-z_][\w-]*)\s*:\s*(.*?)\s*$")


def front_matter(text: str) -> tuple[dict[str, Any], str]:
    """A Markdown file's leading ``---`` block of ``key: value`` lines (title, author, date, updated, tags) and the
    text after it. Only flat keys and ``[a, b]`` or comma lists are read: enough for document metadata without a
    YAML dependency; anything else in the block stays a plain string."""
    m = _FRONT.match(text)
    if not m:
        return {}, text
    fields: dict[str, Any] = {}
    for line in m.group(1).splitlines():
        kv = _FRONT_LINE.match(line)
        if not kv:
            continue
        key, value = kv.group(1).lower(), kv.group(2).strip().strip("\"'")
        if key == "tags":
            fields[key] = [t.strip().strip("\"'") for t in value.strip("[]").split(",") if t.strip()]
        elif value:
            fields[key] = value
    return fields, text[m.end():]


def _front_date(value: Any) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _load_pdf(path: Path, max_pages: int) -> tuple[str, str, dict[str, Any]]:
    from langchain_community.document_loaders import PyPDFLoader
    from pypdf import PdfReader

    try:
        n = len(PdfReader(str(path)).pages)
        if n > max_pages:
            raise LoadError(f"has {n} pages, over the {max_pages}-page limit (CITEWISE_MAX_PDF_PAGES)")
        pages = PyPDFLoader(str(path)).load()
    except LoadError:
        raise
    except Exception as exc:  # pypdf raises many types for corrupt files
        if type(exc).__name__ == "LimitReachedError":
            raise LoadError("inflates past pypdf's decompression limit (a decompression bomb?); skipped") from None
        raise LoadError(f"is not a readable PDF ({type(exc).__name__}: {str(exc)[:200]})") from None
    text = "\n\n".join(p.page_content for p in pages)
    meta = pages[0].metadata if pages else {}
    title = str(meta.get("title") or "")
    return title, text, {"pages": len(pages)}


def _load_jsonl(path: Path) -> Iterator[RawDocument | LoadFailure]:
    """BEIR corpus form: one ``{"_id", "title", "text"}`` object per line, one document each."""
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, 1):
            uri = f"{path}#{lineno}"
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                doc_id = str(obj["_id"])
                text = normalize(str(obj.get("text") or ""))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                yield LoadFailure(uri, f"line {lineno} is not valid JSON ({exc})")
                continue
            except (KeyError, TypeError):
                yield LoadFailure(uri, f'line {lineno} lacks "_id"; expected {{"_id", "title", "text"}}')
                continue
            if not text:
                yield LoadFailure(f"{path}#{doc_id}", "empty text")
                continue
            meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
            yield RawDocument(uri=doc_id, text=text, title=normalize(str(obj.get("title") or "")),
                              metadata={k: v for k, v in meta.items() if isinstance(v, str | int | float | bool)})


def load_path(path: Path, limits: Limits | int) -> Iterator[RawDocument | LoadFailure]:
    """Load one file; yields one document (a JSONL file yields many) or failures. PDF and HTML are parsed in a
    child process within the time and memory budgets (retrieval.sandbox)."""
    from retrieval.sandbox import LimitExceeded, run_limited

    limits = limits if isinstance(limits, Limits) else Limits(max_bytes=limits)
    max_bytes = limits.max_bytes
    uri = str(path)
    kind = SUPPORTED.get(path.suffix.lower())
    if kind is None:
        yield LoadFailure(uri, f"unsupported file type {path.suffix or '(none)'!r}; supported: "
                               + ", ".join(sorted(SUPPORTED)))
        return
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise LoadError(f"is {size / 1e6:.1f} MB, over the {max_bytes / 1e6:.0f} MB limit "
                            "(raise CITEWISE_MAX_FILE_MB or split the file)")
        if size == 0:
            raise LoadError("is empty")
        if kind == "jsonl":
            yield from _load_jsonl(path)
            return
        created = _file_times(path)
        meta: dict[str, Any] = {"file_type": kind}
        front: dict[str, Any] = {}
        if kind == "pdf":
            title, text, extra = run_limited(_load_pdf, path, limits.max_pages, timeout_s=limits.timeout_s,
                                             memory_mb=limits.memory_mb)
            text = normalize(text)
            meta.update(extra)
        else:
            raw, encoding = _decode(path.read_bytes())
            if encoding == "windows-1252":
                meta["decoded_as"] = encoding  # the ingest report names the file (retrieval.ingest)
            if kind == "html":
                title, text = run_limited(html_to_text, raw, timeout_s=limits.timeout_s, memory_mb=limits.memory_mb)
            else:
                text = normalize(raw)
                if kind == "markdown":
                    front, text = front_matter(text)
                    if front.get("tags"):
                        meta["tags"] = front["tags"]
                title = front.get("title") or (_markdown_title(text, "") if kind == "markdown" else "")
        if not text.strip():
            raise LoadError("has no text after cleaning")
        yield RawDocument(uri=uri, text=text, title=title or path.stem.replace("_", " ").replace("-", " "),
                          created_at=_front_date(front.get("date") or front.get("created")),
                          updated_at=_front_date(front.get("updated")) or created, author=front.get("author"),
                          metadata=meta)
    except (LoadError, LimitExceeded) as exc:
        yield LoadFailure(uri, f"{path.name} {exc}")
    except PermissionError:
        yield LoadFailure(uri, f"{path.name} is not readable (permission denied); fix its permissions")
    except OSError as exc:
        yield LoadFailure(uri, f"{path.name} could not be read ({exc.strerror or exc})")
