"""Hostile and broken input through the whole ingest: each file is ingested or reported with its reason, within
budgets that are settings; memory stays bounded; one file never stops the rest."""

from __future__ import annotations

import dataclasses
import resource
from pathlib import Path

from retrieval.ingest import IngestOptions, ingest
from tests.conftest import write_files
from tests.pdf_fixture import make_pdf, make_pdf_bomb, make_pdf_raw


def _tree(root: Path) -> None:
    deep = "/".join(f"d{i}" for i in range(120))
    text_with_nul = ("Widgets are assembled in hall four. " * 400) + "\x00\x00 hidden \x00 " + "The end."
    write_files(root, {
        "good/handbook.md": "# Handbook\n\nBadges are collected at reception on the first day.\n",
        "good/report.pdf": make_pdf("Quarterly revenue grew by four percent"),
        "bad/corrupt.pdf": b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >> endobj\ntrailer << >>\n%%EOF",
        "bad/truncated.pdf": make_pdf("cut short")[:150],
        "bad/bomb.pdf": make_pdf_bomb(600),
        "bad/long.pdf": make_pdf_raw([b"BT /F1 12 Tf 72 720 Td (page) Tj ET"] * 8),
        "bad/photo.txt": bytes(range(256)) * 64,
        "bad/broken-utf8.txt": b"caf\xc3 \x81\x8d\x8f\x90\x9d",
        "ok/latin1.txt": "Caf\u00e9 cr\u00e8me".encode("cp1252"),
        "ok/nul-late.txt": text_with_nul.encode(),
        "ok/deep/" + deep + "/bottom.md": "# Bottom\n\nFound at the bottom of a deep tree.\n",
        "bad/nested.html": ("<div>" * 50_000 + "x" + "</div>" * 50_000).encode(),
    })
    (root / "ok" / "loop").symlink_to(root / "ok")
    with open(root / "bad" / "huge-line.txt", "wb") as fh:  # 60 MB on one line
        for _ in range(60):
            fh.write(b"word " * 200_000)


def test_hostile_files_are_reported_and_the_rest_is_ingested(tmp_path, url, conn, embedder, settings) -> None:
    _tree(tmp_path)
    tight = dataclasses.replace(settings.ingest, max_pdf_pages=5, file_timeout_s=20.0, file_memory_mb=300.0)
    limited = dataclasses.replace(settings, ingest=tight)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = ingest(url, embedder, [tmp_path], limited, IngestOptions(source="mixed"))
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    reasons = {Path(f.uri).name: f.reason for f in report.failures}
    assert "not a readable PDF" in reasons["corrupt.pdf"] and "not a readable PDF" in reasons["truncated.pdf"]
    assert "decompression bomb" in reasons["bomb.pdf"]
    assert "8 pages, over the 5-page limit (CITEWISE_MAX_PDF_PAGES)" in reasons["long.pdf"]
    assert "binary" in reasons["photo.txt"] and "not valid UTF-8" in reasons["broken-utf8.txt"]
    assert "over the 50 MB limit" in reasons["huge-line.txt"]
    assert "nested.html" not in reasons or "CITEWISE_FILE" in reasons["nested.html"]
    stored = {r[0].rsplit("/", 1)[-1]: r[1] for r in conn.execute("SELECT uri, title FROM documents")}
    assert {"handbook.md", "report.pdf", "latin1.txt", "nul-late.txt", "bottom.md"} <= set(stored)
    text = conn.execute("SELECT string_agg(text, ' ') FROM chunks c JOIN documents d ON d.id = c.document_id "
                        "WHERE d.uri LIKE '%%nul-late.txt'").fetchone()[0]
    assert "\x00" not in text and "hidden" in text
    assert grown_mb < 400, f"the ingest process grew by {grown_mb:.0f} MB"
    assert report.failed == len(report.failures) >= 7


def _hog(mb: int) -> int:
    blocks = [bytearray(1_000_000) for _ in range(mb)]
    return len(blocks)


def _sleep(s: float) -> None:
    import time

    time.sleep(s)


def _die() -> None:
    import os

    os._exit(3)


def test_the_parse_sandbox_enforces_time_and_memory_and_survives_crashes() -> None:
    import pytest

    from retrieval.sandbox import LimitExceeded, run_limited

    assert run_limited(_hog, 20, timeout_s=10, memory_mb=200) == 20
    with pytest.raises(LimitExceeded, match="more than 100 MB"):
        run_limited(_hog, 800, timeout_s=30, memory_mb=100)
    with pytest.raises(LimitExceeded, match="longer than 1 s"):
        run_limited(_sleep, 30, timeout_s=1, memory_mb=100)
    with pytest.raises(LimitExceeded, match="exit code 3"):
        run_limited(_die, timeout_s=5, memory_mb=100)
    with pytest.raises(ZeroDivisionError):
        run_limited(divmod, 1, 0, timeout_s=5, memory_mb=100)
