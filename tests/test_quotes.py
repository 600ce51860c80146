"""Quotes behind claims: a claim is shown only when its quote is a sentence of a source and states it; the
quote, not the model's marker, decides the source; the grammar holds a llama.cpp reply to that form."""

from __future__ import annotations

import pytest

from chat.engine.context import Source
from chat.engine.quotes import QuoteStream, grammar, locate
from chat.engine.verify import SentenceStream
from core.settings import VerifySettings

SOURCES = [Source(1, (), "Rollo signed a treaty with King Charles in 911. The treaty granted the Normans the lands "
                         "around Rouen. William the Conqueror was born in Falaise."),
           Source(2, (), "Expense receipts are due within 30 days of purchase. They are filed in the finance portal.")]
Q = "Who signed a treaty with King Charles in 911?"


def _run(reply: str, cls=QuoteStream, chunk: int = 4, sources=SOURCES, question: str = Q):
    released: list[str] = []
    stream = cls(sources, question, VerifySettings(), "", released.append)
    for i in range(0, len(reply), chunk):
        stream.feed(reply[i:i + chunk])
    return released, stream.close()


@pytest.mark.parametrize("chunk", [1, 5, 1000])
def test_a_claim_with_its_quote_is_shown_without_the_quote(chunk: int) -> None:
    reply = ("Rollo signed the treaty with King Charles [1] «Rollo signed a treaty with King Charles in 911.»\n"
             "The treaty granted the Normans the lands around Rouen [1] «The treaty granted the Normans the lands "
             "around Rouen.»\n")
    released, verdict = _run(reply, chunk=chunk)
    assert verdict.text == "Rollo signed the treaty with King Charles [1]. The treaty granted the Normans the lands " \
                           "around Rouen [1].", verdict.text
    assert "«" not in verdict.text and "".join(released) == verdict.text
    assert verdict.cited == (1,) and not verdict.abstained


def test_the_quote_decides_the_source_when_the_marker_names_another() -> None:
    _released, verdict = _run("Receipts are due within 30 days of purchase [1] «Expense receipts are due within 30 "
                             "days of purchase.»\n", question="When are expense receipts due?")
    assert verdict.cited == (2,) and verdict.auto_cited == 1 and "[2]" in verdict.text


def test_a_quote_no_source_holds_drops_its_claim() -> None:
    _, verdict = _run("Rollo signed it [1] «Rollo signed the treaty at Saint-Clair-sur-Epte in the year 911.»\n")
    assert verdict.abstained and verdict.abstain_reason == "misquoted"


def test_a_claim_is_judged_against_its_quote_not_the_whole_passage() -> None:
    # every word of the wrong claim is in source 1, so the passage-wide word check passes it; its quote does not
    # state it, so the quoted reply does not show it
    lead = "Rollo signed a treaty with King Charles in 911 [1]"
    wrong = "William the Conqueror granted the Normans the lands around Rouen [1]"
    _, words = _run(f"{lead}. {wrong}.", cls=SentenceStream)
    assert "William" in words.text and words.dropped == 0
    _, quoted = _run(f"{lead} «Rollo signed a treaty with King Charles in 911.»\n"
                     f"{wrong} «The treaty granted the Normans the lands around Rouen.»\n")
    assert "William" not in quoted.text and quoted.dropped == 1 and quoted.text.startswith("Rollo signed")
    _, alone = _run(f"{wrong} «William the Conqueror was born in Falaise.»\n")
    assert alone.abstained and alone.abstain_reason == "unsupported"


def test_a_claim_without_a_quote_is_not_shown_and_the_decline_is_an_abstention() -> None:
    _, bare = _run("Rollo signed a treaty with King Charles in 911 [1].\n")
    assert bare.abstained and bare.abstain_reason == "unquoted"
    released, declined = _run("The sources do not contain the answer.")
    assert declined.abstained and declined.abstain_reason == "model_declined"
    assert released == ["The sources do not contain the answer."]


def test_locate_finds_a_quote_up_to_case_space_and_punctuation() -> None:
    assert locate("the treaty granted the normans  the lands around rouen", SOURCES, (2,))[0] == 1
    assert locate("Rollo ruled England.", SOURCES, (1,)) is None


def test_the_grammar_allows_exactly_each_sources_sentences_as_quotes() -> None:
    from llama_cpp import LlamaGrammar

    text = grammar(SOURCES)
    LlamaGrammar.from_string(text, verbose=False)  # llama.cpp's own parser accepts it
    assert '"[1] «" q1 "»"' in text and '"[2] «" q2 "»"' in text
    assert '"William the Conqueror was born in Falaise."' in text
    assert grammar([Source(1, (), "")]).startswith('root ::= "The sources do not contain the answer."')
    quoted = grammar([Source(1, (), 'He said "stop" \\ then left.')])
    assert r'"He said \"stop\" \\ then left."' in quoted


def test_a_sentence_the_quote_does_not_state_is_left_out_of_its_claim() -> None:
    reply = ("Rollo signed it in 911. William the Conqueror was born in Falaise [1] «Rollo signed a treaty with King "
             "Charles in 911.»\n")
    released, verdict = _run(reply)
    assert verdict.text.startswith("Rollo signed it in 911 [1].") and "Falaise" not in verdict.text, verdict.text
    assert verdict.dropped == 1 and "left out 1 sentence" in verdict.text and "".join(released) == verdict.text
