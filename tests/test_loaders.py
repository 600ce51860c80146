from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from retrieval.loaders import LoadFailure, RawDocument, iter_files, load_path
from tests.conftest import write_files
from tests.pdf_fixture import make_pdf

MB = 1_000_000


def load(path: Path, max_bytes: int = 50 * MB) -> list[RawDocument | LoadFailure]:
    return list(load_path(path, max_bytes))


def test_markdown_title_and_text(tmp_path: Path) -> None:
    write_files(tmp_path, {"guide.md": "# The Guide\n\n\n\nSome   text.\r\nMore\ttext."})
    [doc] = load(tmp_path / "guide.md")
    assert isinstance(doc, RawDocument)
    assert doc.title == "The Guide"
    assert doc.text == "# The Guide\n\nSome text.\nMore text."


def test_html_boilerplate_is_removed_and_headings_kept(tmp_path: Path) -> None:
    html = """<html><head><title>Pricing page</title><style>p{color:red}</style></head><body>
    <nav><a href="/">Home</a> | <a href="/about">About</a></nav><header>Site banner</header>
    <main><h1>Pricing</h1><p>One seat costs 10 euros.</p><script>alert('x')</script>
    <h2>Discounts</h2><p>Schools pay half.</p></main><div role="navigation">Menu</div>
    <footer>Copyright 2026</footer></body></html>"""
    write_files(tmp_path, {"p.html": html})
    [doc] = load(tmp_path / "p.html")
    assert isinstance(doc, RawDocument)
    assert doc.title == "Pricing page"
    assert "# Pricing" in doc.text and "## Discounts" in doc.text
    assert "One seat costs 10 euros." in doc.text
    for junk in ("Home", "About", "banner", "alert", "color:red", "Copyright", "Menu"):
        assert junk not in doc.text


def test_pdf_text_is_extracted(tmp_path: Path) -> None:
    write_files(tmp_path, {"memo.pdf": make_pdf("The budget for 2026 is approved.")})
    [doc] = load(tmp_path / "memo.pdf")
    assert isinstance(doc, RawDocument), doc
    assert "budget for 2026 is approved" in doc.text
    assert doc.metadata["pages"] == 1


def test_beir_jsonl_gives_one_document_per_line(tmp_path: Path) -> None:
    lines = [{"_id": "d1", "title": "Alpha", "text": "First."}, {"_id": "d2", "title": "Beta", "text": "Second."}]
    body = "\n".join(json.dumps(x) for x in lines) + "\nnot json\n" + json.dumps({"title": "no id"}) + "\n"
    write_files(tmp_path, {"corpus.jsonl": body})
    out = load(tmp_path / "corpus.jsonl")
    docs = [d for d in out if isinstance(d, RawDocument)]
    failures = [f for f in out if isinstance(f, LoadFailure)]
    assert [(d.uri, d.title, d.text) for d in docs] == [("d1", "Alpha", "First."), ("d2", "Beta", "Second.")]
    assert len(failures) == 2
    assert "not valid JSON" in failures[0].reason and '"_id"' in failures[1].reason


@pytest.mark.parametrize(
    "name,content,reason",
    [
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", "not a readable PDF"),
        ("truncated.pdf", make_pdf("hello world")[:200], "not a readable PDF"),
        ("image.txt", bytes(range(256)) * 4, "binary"),
        ("empty.md", b"", "empty"),
        ("blank.md", b"   \n\n\t  \n", "no text"),
        ("tags.html", b"<html><script>x()</script></html>", "no text"),
        ("data.xlsx", b"PK\x03\x04", "unsupported file type"),
        ("noext", b"hello", "unsupported file type"),
    ],
)
def test_bad_files_fail_with_a_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    write_files(tmp_path, {name: content})
    [result] = load(tmp_path / name)
    assert isinstance(result, LoadFailure)
    assert reason in result.reason
    assert name in result.uri


def test_legacy_encoding_is_decoded_and_undecodable_reported(tmp_path: Path) -> None:
    write_files(tmp_path, {"latin.txt": "Caf\u00e9 cr\u00e8me costs 3\u20ac.".encode("cp1252"),
                           "bad.txt": b"ok \x81\x8d\x8f\x90\x9d bytes"})
    [doc] = load(tmp_path / "latin.txt")
    assert isinstance(doc, RawDocument) and doc.text == "Café crème costs 3€."
    [bad] = load(tmp_path / "bad.txt")
    assert isinstance(bad, LoadFailure) and "not valid UTF-8" in bad.reason and "iconv" in bad.reason


def test_utf16_with_bom_is_read(tmp_path: Path) -> None:
    write_files(tmp_path, {"u16.txt": "Hello UTF-16".encode("utf-16")})
    [doc] = load(tmp_path / "u16.txt")
    assert isinstance(doc, RawDocument) and doc.text == "Hello UTF-16"


def test_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    write_files(tmp_path, {"big.txt": "x" * 2_000_001})
    [result] = load(tmp_path / "big.txt", max_bytes=1 * MB)
    assert isinstance(result, LoadFailure)
    assert "over the 1 MB limit" in result.reason and "CITEWISE_MAX_FILE_MB" in result.reason


def _load_as_unprivileged(path: Path) -> list[RawDocument | LoadFailure]:
    """Root reads every file, so as root the load runs in a child that has dropped to ``nobody``."""
    if os.geteuid() != 0:
        return load(path)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        try:
            os.close(read_fd)
            os.setgid(65534)
            os.setuid(65534)
            results = load(path)
            os.write(write_fd, json.dumps([r.reason if isinstance(r, LoadFailure) else "ok" for r in results]).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as fh:
        reasons = json.loads(fh.read() or "[]")
    os.waitpid(pid, 0)
    return [LoadFailure(str(path), r) if r != "ok" else RawDocument(str(path), "", "") for r in reasons]


def test_unreadable_file(tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    for parent in tmp_path.parents:
        if not os.access(parent, os.X_OK, effective_ids=False) or parent.stat().st_mode & 0o001 == 0:
            parent.chmod(parent.stat().st_mode | 0o001)
    write_files(tmp_path, {"secret.md": "x"})
    (tmp_path / "secret.md").chmod(0)
    [result] = _load_as_unprivileged(tmp_path / "secret.md")
    assert isinstance(result, LoadFailure) and "permission denied" in result.reason


def test_walk_is_recursive_sorted_and_survives_symlink_loops(tmp_path: Path) -> None:
    write_files(tmp_path, {"b.md": "b", "a/x.md": "x", "a/deep/y.txt": "y", ".hidden/z.md": "z"})
    (tmp_path / "a" / "deep" / "loop").symlink_to(tmp_path / "a")
    found = [p for p in iter_files([tmp_path]) if isinstance(p, Path)]
    names = [p.relative_to(tmp_path).as_posix() for p in found]
    assert sorted(names) == ["a/deep/y.txt", "a/x.md", "b.md"]
    [missing] = list(iter_files([tmp_path / "nope"]))
    assert isinstance(missing, LoadFailure) and "no such file" in missing.reason


def test_the_demo_corpus_holds_only_files_citewise_ingests() -> None:
    """`make run` ingests docs/ as the demo corpus and exits 1 on any file it cannot read (benchmark figures put
    there once did exactly that); figures belong under evals/figures/."""
    from retrieval.loaders import SUPPORTED

    docs = Path(__file__).resolve().parents[1] / "docs"
    strays = [p for p in docs.rglob("*") if p.is_file() and p.suffix.lower() not in SUPPORTED]
    assert not strays, strays
