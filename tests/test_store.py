from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from retrieval import store
from retrieval.ingest import IngestOptions, ingest
from retrieval.store import ModelMismatchError
from tests.conftest import write_files

GUIDE = "# Guide\n\n" + "\n\n".join(f"Section {i} explains feature {i} of the product in detail." for i in range(30))


def counts(conn) -> tuple[int, int, int, int]:
    return conn.execute(
        "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks), "
        "(SELECT coalesce(sum(df), 0) FROM keyword_df), (SELECT n_chunks FROM keyword_stats)"
    ).fetchone()


def snapshot(conn) -> list[tuple]:
    return conn.execute(
        "SELECT c.id, c.document_id, c.text, c.embedding::text, c.keyword_vec::text FROM chunks c ORDER BY c.id"
    ).fetchall()


def keyword_stats_consistent(conn) -> None:
    """The trigger-maintained statistics equal what a recount from the chunks gives."""
    stored = dict(conn.execute("SELECT term_id, df FROM keyword_df WHERE df > 0").fetchall())
    recount = dict(conn.execute(
        "SELECT t, count(*) FROM chunks, unnest(keyword_terms) t GROUP BY t").fetchall())
    assert stored == recount
    n, total = conn.execute("SELECT n_chunks, total_len FROM keyword_stats").fetchone()
    assert (n, total) == conn.execute("SELECT count(*), coalesce(sum(keyword_len), 0) FROM chunks").fetchone()


def test_reingest_is_a_noop(tmp_path: Path, url, conn, embedder, settings) -> None:
    write_files(tmp_path, {"guide.md": GUIDE, "faq.txt": "Question one. Answer one.", "sub/notes.md": "# Notes\n\nHi."})
    first = ingest(url, embedder, [tmp_path], settings)
    assert (first.added, first.updated, first.unchanged, first.failed) == (3, 0, 0, 0)
    before, rows = counts(conn), snapshot(conn)
    second = ingest(url, embedder, [tmp_path], settings)
    assert (second.added, second.updated, second.unchanged, second.embedded) == (0, 0, 3, 0)
    assert counts(conn) == before
    assert snapshot(conn) == rows
    keyword_stats_consistent(conn)


def test_changed_document_replaces_its_chunks_and_reuses_unchanged_embeddings(tmp_path, url, conn, embedder,
                                                                            settings) -> None:
    write_files(tmp_path, {"guide.md": GUIDE})
    ingest(url, embedder, [tmp_path], settings)
    old_ids = {r[0] for r in conn.execute("SELECT id FROM chunks")}
    n_old = len(old_ids)
    write_files(tmp_path, {"guide.md": GUIDE + "\n\nA new closing paragraph about refunds."})
    report = ingest(url, embedder, [tmp_path], settings)
    assert (report.added, report.updated, report.unchanged) == (0, 1, 0)
    assert report.embedded < report.chunks, "unchanged passages reuse their stored embeddings"
    docs = conn.execute("SELECT count(*) FROM documents").fetchone()[0]
    assert docs == 1
    texts = [r[0] for r in conn.execute("SELECT text FROM chunks ORDER BY ordinal")]
    assert "refunds" in texts[-1]
    assert conn.execute("SELECT count(*) FROM chunks c LEFT JOIN documents d ON d.id = c.document_id "
                        "WHERE d.id IS NULL").fetchone()[0] == 0
    assert len(texts) >= n_old
    keyword_stats_consistent(conn)


def test_delete_by_source_and_by_document(tmp_path, url, conn, embedder, settings) -> None:
    write_files(tmp_path / "a", {"one.md": "# One\n\nAlpha text.", "two.md": "# Two\n\nBeta text."})
    write_files(tmp_path / "b", {"three.md": "# Three\n\nGamma text."})
    ingest(url, embedder, [tmp_path / "a"], settings, IngestOptions(source="alpha"))
    ingest(url, embedder, [tmp_path / "b"], settings, IngestOptions(source="beta"))
    assert store.delete(conn, source="alpha") == 2
    assert conn.execute("SELECT array_agg(source) FROM documents").fetchone()[0] == ["beta"]
    doc_id = conn.execute("SELECT id FROM documents").fetchone()[0]
    assert store.delete(conn, document_id=doc_id) == 1
    assert counts(conn)[:2] == (0, 0)
    assert store.delete(conn, source="nothing") == 0
    keyword_stats_consistent(conn)
    with pytest.raises(ValueError):
        store.delete(conn)


def test_metadata_groups_and_pii_are_stored(tmp_path, url, conn, embedder, settings) -> None:
    write_files(tmp_path, {"hr.md": "# HR\n\nAsk hr@example.com or call +44 20 7946 0958."})
    report = ingest(url, embedder, [tmp_path], settings,
                    IngestOptions(source="hr", metadata={"team": "people"}, groups=("hr", "admin"), author="Ada"))
    assert report.pii == {"EMAIL": 1, "PHONE": 1}
    row = conn.execute("SELECT source, author, access_groups, metadata, pii_counts FROM documents").fetchone()
    assert row[0] == "hr" and row[1] == "Ada" and row[2] == ["admin", "hr"]
    assert row[3]["team"] == "people" and row[3]["file_type"] == "markdown"
    assert row[4] == {"EMAIL": 1, "PHONE": 1}
    text = conn.execute("SELECT string_agg(text, ' ') FROM chunks").fetchone()[0]
    assert "[EMAIL]" in text and "[PHONE]" in text and "example.com" not in text


def test_pii_is_scrubbed_from_author_uri_and_metadata_too(tmp_path, url, conn, embedder, settings) -> None:
    folder = tmp_path / "jane.doe@example.com"
    write_files(folder, {"notes.md": "---\nauthor: Jane <jane@example.com>\ntags: [call +44 20 7946 0958]\n---\n"
                                     "# Notes\n\nNothing personal here."})
    report = ingest(url, embedder, [folder], settings, IngestOptions(metadata={"owner": "bob@example.com"}))
    row = conn.execute("SELECT uri, author, metadata::text FROM documents").fetchone()
    assert "example.com" not in " ".join(row) and "7946" not in row[2], row
    assert "[EMAIL]" in row[0] and "[EMAIL]" in row[1] and "[PHONE]" in row[2]
    assert report.pii["EMAIL"] >= 3


def test_a_file_read_as_windows_1252_is_named_in_the_report(tmp_path, url, conn, embedder, settings) -> None:
    write_files(tmp_path, {"legacy.txt": "Caf\xe9 opening hours: eight to three.".encode("cp1252"),
                           "plain.md": "# Plain\n\nAll UTF-8."})
    report = ingest(url, embedder, [tmp_path], settings)
    assert report.added == 2 and not report.failures
    assert len(report.notices) == 1 and "legacy.txt" in report.notices[0] and "Windows-1252" in report.notices[0]
    assert "Café" in conn.execute("SELECT string_agg(text, ' ') FROM chunks").fetchone()[0]


def test_pii_scrubbing_can_be_switched_off(tmp_path, url, conn, embedder, settings) -> None:
    write_files(tmp_path, {"hr.md": "Ask hr@example.com."})
    report = ingest(url, embedder, [tmp_path], replace(settings, ingest=replace(settings.ingest, scrub_pii=False)))
    assert not report.pii
    assert "hr@example.com" in conn.execute("SELECT text FROM chunks").fetchone()[0]


def test_one_bad_file_does_not_stop_the_rest(tmp_path, url, conn, embedder, settings) -> None:
    write_files(tmp_path, {"good.md": "# Good\n\nFine text.", "bad.pdf": b"%PDF-1.4 garbage",
                           "bin.txt": b"\x00\x01\x02", "z.md": "# Last\n\nAlso fine."})
    report = ingest(url, embedder, [tmp_path, tmp_path / "missing"], settings)
    assert report.added == 2
    assert sorted(Path(f.uri).name for f in report.failures) == ["bad.pdf", "bin.txt", "missing"]
    assert counts(conn)[0] == 2


def test_a_different_embedding_model_is_refused(conn) -> None:
    store.ensure_model(conn, "all-MiniLM-L6-v2", 384)
    store.ensure_model(conn, "all-MiniLM-L6-v2", 384)
    with pytest.raises(ModelMismatchError, match="citewise reindex"):
        store.ensure_model(conn, "text-embedding-3-small", 1536)


def test_reindex_reembeds_everything(tmp_path, url, conn, embedder, settings) -> None:
    write_files(tmp_path, {"guide.md": GUIDE})
    ingest(url, embedder, [tmp_path], settings)
    before = snapshot(conn)
    conn.execute("UPDATE chunks SET embedding = (SELECT embedding FROM chunks LIMIT 1)")  # corrupt them
    n = store.reindex(conn, embedder, settings.search)
    assert n == len(before)
    after = snapshot(conn)
    assert [r[0] for r in after] == [r[0] for r in before]
    # embeddings restored (halfvec text can differ in the last digit between runs, compare loosely)
    import numpy as np

    for (_, _, _, a, _), (_, _, _, b, _) in zip(before, after, strict=True):
        va, vb = np.array(json.loads(a)), np.array(json.loads(b))
        assert float(va @ vb) > 0.999
    assert conn.execute("SELECT count(*) FROM pg_indexes WHERE indexname = 'chunks_embedding_hnsw'").fetchone()[0] == 1
    keyword_stats_consistent(conn)
