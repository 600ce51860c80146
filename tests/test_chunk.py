from __future__ import annotations

import itertools

import pytest

from core.settings import ChunkSettings
from retrieval.chunk import split
from retrieval.tokens import count
from retrieval.types import Document

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank. "


def doc(text: str) -> Document:
    return Document(source="s", uri="u", text=text)


@pytest.mark.parametrize("max_tokens,overlap", [(50, 10), (100, 20), (200, 40), (64, 0)])
def test_chunks_respect_the_token_limit_and_are_exact_spans(max_tokens: int, overlap: int) -> None:
    text = "# Title\n\n" + "\n\n".join(SENTENCE * n for n in (1, 7, 3, 12, 2)) + "\n\n## Next\n\n" + SENTENCE * 9
    d = doc(text)
    chunks = split(d, ChunkSettings(max_tokens, overlap))
    assert len(chunks) > 1
    for c in chunks:
        assert c.token_count == count(c.text) <= max_tokens
        assert text[c.start:c.end] == c.text
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    covered = set()
    for c in chunks:
        covered.update(range(c.start, c.end))
    words = [i for i, ch in enumerate(text) if not ch.isspace()]
    assert set(words) <= covered, "every non-space character belongs to some chunk"


def test_overlap_repeats_trailing_sentences_within_budget() -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(60))
    chunks = split(doc(text), ChunkSettings(60, 15))
    overlaps = 0
    for a, b in itertools.pairwise(chunks):
        assert b.start < a.end, "consecutive chunks overlap"
        shared = a.text[b.start - a.start:]
        assert count(shared) <= 15 + 2
        overlaps += 1
    assert overlaps >= 3


def test_no_overlap_when_disabled() -> None:
    text = " ".join(f"Sentence number {i} talks about topic {i}." for i in range(60))
    chunks = split(doc(text), ChunkSettings(60, 0))
    for a, b in itertools.pairwise(chunks):
        assert b.start >= a.end


def test_headings_start_chunks_and_are_kept_as_path() -> None:
    text = "# Guide\n\nIntro.\n\n## Install\n\nRun make.\n\n### Linux\n\nUse apt.\n\n## Usage\n\nAsk questions."
    chunks = split(doc(text), ChunkSettings(200, 40))
    assert [c.heading_path for c in chunks] == [
        ("Guide",), ("Guide", "Install"), ("Guide", "Install", "Linux"), ("Guide", "Usage"),
    ]
    assert chunks[2].text.startswith("### Linux")


def test_prefers_paragraph_boundaries() -> None:
    para = "This paragraph has several sentences. " * 4
    text = "\n\n".join([para.strip()] * 6)
    chunks = split(doc(text), ChunkSettings(100, 0))
    for c in chunks[:-1]:
        assert c.text.endswith("sentences."), "chunks end at sentence ends"
        nxt = text[c.end:c.end + 2]
        assert nxt == "\n\n", f"chunk ends at a paragraph boundary, not mid-paragraph: {nxt!r}"


def test_a_sentence_longer_than_a_chunk_is_split_on_words() -> None:
    text = "word " * 500
    chunks = split(doc(text.strip()), ChunkSettings(50, 10))
    assert all(c.token_count <= 50 for c in chunks)
    assert len(chunks) >= 10


def test_one_giant_token_run_is_cut_by_characters() -> None:
    blob = "QUJD" * 3000  # base64-like, no spaces
    chunks = split(doc(blob), ChunkSettings(100, 0))
    assert all(c.token_count <= 100 for c in chunks)
    assert "".join(c.text for c in chunks) == blob


def test_ids_are_content_hashes() -> None:
    a = split(doc("Hello world. " * 50), ChunkSettings(40, 5))
    b = split(doc("Hello world. " * 50), ChunkSettings(40, 5))
    assert [c.id for c in a] == [c.id for c in b]
    c = split(Document(source="s", uri="u", text="Hello world! " * 50), ChunkSettings(40, 5))
    assert a[0].id != c[0].id


def test_a_heading_without_text_joins_the_next_section() -> None:
    text = "# Searching\n\n## How search works\n\nIt fuses two rankings.\n\n## Modes\n\nThree modes."
    chunks = split(doc(text), ChunkSettings(200, 40))
    assert [c.heading_path for c in chunks] == [("Searching", "How search works"), ("Searching", "Modes")]
    assert chunks[0].text.startswith("# Searching\n\n## How search works")
