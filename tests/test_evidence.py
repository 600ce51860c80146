"""Sentence-level evidence and the answer gates behind the short-answer prompt (issue 13), on real text."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from chat.engine import evidence
from chat.engine.context import Source, build_sentences
from chat.engine.verify import SentenceStream, verify
from core.settings import VerifySettings
from evals import gates, guide
from retrieval.tokens import count
from retrieval.types import Hit

DOCS = Path(__file__).resolve().parent.parent / "docs"
PARAGRAPH = ("The Grainger Market replaced an earlier market originally built in 1808 called the Butcher Market. "
             "The Grainger Market itself was opened in 1835 and was Newcastle's first indoor market. At the time of "
             "its opening it was said to be one of the largest markets in Europe. The opening was celebrated with a "
             "grand dinner attended by 2000 guests.")
OTHER = ("The Laing Art Gallery holds paintings of the region. Its collection of watercolours grew in the 1950s. "
         "Admission is free on weekdays.")


def _hit(doc: str, text: str, ordinal: int = 0) -> Hit:
    return Hit(chunk_id=f"{doc}-{ordinal}", document_id=doc, text=text, title=doc, source="t", uri=f"{doc}.md",
               heading_path=(), start=0, end=len(text), score=1.0, ordinal=ordinal)


def test_split_keeps_sentences_and_a_small_table_whole() -> None:
    text = ("Three presets control how the model writes:\n\n| Preset | Temperature |\n| --- | --- |\n"
            "| precise | 0.1 |\n| creative | 0.8 |\n\nChoose one with --preset. A value out of range is refused.")
    units = evidence.split(text)
    assert units[0] == "Three presets control how the model writes:"
    assert any(u.startswith("| Preset") and "| creative | 0.8 |" in u for u in units), "the table stays one unit"
    assert units[-2:] == ["Choose one with --preset.", "A value out of range is refused."]


def test_select_picks_the_sentence_that_answers_and_stays_in_budget() -> None:
    q = "When was Newcastle's first indoor market opened?"
    excerpts = evidence.select(q, [OTHER, PARAGRAPH], 40)
    assert "opened in 1835" in excerpts[1], excerpts
    assert sum(count(e) for e in excerpts) <= 40
    wide = evidence.select(q, [OTHER, PARAGRAPH], 400)
    assert wide[1] == PARAGRAPH, "with room, the neighbours join in document order"


def test_select_marks_a_gap_between_sentences_it_skipped() -> None:
    text = ("Alpha is first. Beta follows it. Gamma is an unrelated sentence that runs on for a long while about "
            "nothing in particular at all. Delta holds the vacation days answer.")
    (excerpt,) = evidence.select("vacation days alpha", [text], 18)
    assert "Alpha" in excerpt and "vacation days" in excerpt and "…" in excerpt, excerpt


def test_sources_are_numbered_from_the_passages_and_never_over_budget() -> None:
    hits = [_hit("market", PARAGRAPH), _hit("gallery", OTHER)]
    sources, block = build_sentences(hits, "When did the Grainger Market open?", 120, 3)
    assert [s.number for s in sources] == [1, 2][:len(sources)] and "1835" in sources[0].text
    assert count(block) <= 120 and '<source id="1"' in block


SRC = [Source(1, (), PARAGRAPH), Source(2, (), OTHER)]
ON = VerifySettings(min_anchor=0.4)


def test_a_lead_taken_from_a_sentence_about_something_else_is_not_shown() -> None:
    q = "Which market did the Grainger Market replace?"
    good = verify("The Butcher Market [1]. It was built in 1808 [1].", SRC, q, ON)
    assert not good.abstained and good.text.startswith("The Butcher Market [1].")
    q2 = "How many visitors does the Laing Art Gallery count each year?"
    bad = verify("2000 guests [1].", SRC, q2, ON)
    assert bad.abstained and bad.abstain_reason == "off_question", bad
    off = verify("2000 guests [1].", SRC, q2, replace(ON, min_anchor=0.0))
    assert not off.abstained, "with the gate off the same reply is shown: the gate is what stops it"


def test_a_short_lead_must_be_supported_and_bare_markers_are_never_shown() -> None:
    q = "Which market did the Grainger Market replace?"
    made_up = verify("The Fish Hall [1].", SRC, q, ON)
    assert made_up.abstained and made_up.abstain_reason == "unsupported"
    released: list[str] = []
    stream = SentenceStream(SRC, q, ON, "", released.append)
    stream.feed("Commander Walter Jones flew the Grainger rocket to Mars in 1701.\n\n[1][2]")
    verdict = stream.close()
    assert verdict.abstained and not any(p.strip().startswith("[") for p in released), released


def test_gate_curves_come_from_replies_without_asking_the_model() -> None:
    rec = {"kind": "paragraph", "question": "How many visitors does the Laing Art Gallery count each year?",
           "gold": ["300,000"], "raw": "2000 guests [1].", "best_similarity": 0.5,
           "sources": [{"number": 1, "uri": "m", "text": PARAGRAPH}]}
    ok = {"kind": "answerable", "question": "Which market did the Grainger Market replace?",
          "gold": ["the Butcher Market"], "raw": "The Butcher Market [1].", "best_similarity": 0.6,
          "sources": [{"number": 1, "uri": "m", "text": PARAGRAPH}]}
    points = {(p.gate, p.value): p for p in gates.curves([rec, ok], VerifySettings(), 0.0)}
    off, on = points[("min_anchor", 0.0)], points[("min_anchor", 0.4)]
    assert off.hard_abstention == 0.0 and on.hard_abstention == 1.0
    assert on.gold_contained == 1.0 and on.precision == 1.0 and on.recall == 1.0


@pytest.mark.parametrize("name", ["guide_questions.jsonl", "guide_questions_2.jsonl"])
def test_the_guide_question_sets_are_grounded_in_the_guide(name: str) -> None:
    rows = guide.load(guide.QUESTIONS.with_name(name))
    answerable = [r for r in rows if r["kind"] == "answerable"]
    assert len(answerable) >= 30 and len(rows) - len(answerable) >= 10
    texts = {p.name: " ".join(p.read_text().split()) for p in DOCS.glob("*.md")}
    for r in answerable:
        assert set(r["docs"]) <= texts.keys(), r
        first = r["passage"].split("...")[0].strip()[:40]
        assert any(first in texts[d] for d in r["docs"]), f"{r['id']}: passage not found in {r['docs']}"
        assert guide.holds(r["passage"], r["answers"]) or "..." in r["passage"], f"{r['id']}: gold not in passage"


@pytest.mark.parametrize(("reply", "answers", "expected"), [
    ("Set CITEWISE_SCRUB_PII=0 [1].", [["CITEWISE_SCRUB_PII"]], True),
    ("It exits with status 1 [1].", [["1"]], True),
    ("It was founded in 2016 [1].", [["1"]], False),
    ("precise uses 0.1 and creative 0.8 [2].", [["precise"], ["creative"], ["0.1"]], True),
    ("precise uses 0.1 [2].", [["precise"], ["creative"]], False),
])
def test_gold_answers_match_on_their_own(reply: str, answers: list[list[str]], expected: bool) -> None:
    assert guide.holds(reply, answers) is expected


def test_remarks_about_the_sources_and_prompt_labels_are_not_shown() -> None:
    q = "Which market did the Grainger Market replace?"
    reply = ("ANSWER [1] The Grainger Market replaced the Butcher Market. This source is from [2]. Explanation [2].\n\n"
             "Source: [1]")
    verdict = verify(reply, SRC, q, ON)
    assert verdict.text == "The Grainger Market replaced the Butcher Market [1].", verdict
    assert verdict.dropped == 0, "remarks are not claims: nothing was left out"


def test_a_case_name_with_v_is_not_cut_into_two_sentences() -> None:
    src = [Source(1, (), "After Brown v. Board of Education of Topeka, families organised private academies.")]
    verdict = verify("After Brown v. Board of Education of Topeka, families organised private academies [1].", src,
                     "What did families organise after Brown v. Board of Education?", ON)
    assert verdict.text == "After Brown v. Board of Education of Topeka, families organised private academies [1]."


def test_a_sentence_the_model_repeats_is_shown_once() -> None:
    q = "Which market did the Grainger Market replace?"
    verdict = verify("The Grainger Market replaced the Butcher Market [1]. The Grainger Market replaced the Butcher "
                     "Market [1].", SRC, q, ON)
    assert verdict.text == "The Grainger Market replaced the Butcher Market [1].", verdict


def test_the_gate_curves_switch_the_anchor_gate_by_its_check_name() -> None:
    from chat.engine.checks import NAMES
    assert gates.ANCHOR_OFF.issubset(NAMES)


def test_the_postgresql_question_set_is_grounded_in_its_pages() -> None:
    from bs4 import BeautifulSoup

    pages = guide.QUESTIONS.parent / "pgdocs" / "html"
    rows = guide.load(guide.QUESTIONS.with_name("pg_questions.jsonl"))
    answerable = [r for r in rows if r["kind"] == "answerable"]
    assert len(answerable) >= 30 and len(rows) - len(answerable) >= 10
    texts = {p.name: " ".join(BeautifulSoup(p.read_text(), "html.parser").get_text(" ").split())
             for p in pages.glob("*.html")}
    for r in answerable:
        assert set(r["docs"]) <= texts.keys(), r
        assert any(r["passage"] in texts[d] for d in r["docs"]), f"{r['id']}: passage not found in {r['docs']}"
        assert guide.holds(r["passage"], r["answers"][:1]), f"{r['id']}: gold not in passage"
