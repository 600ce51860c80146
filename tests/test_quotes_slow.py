"""Quotes behind claims with the real local LLM (issue 25): the managed llama.cpp server holds the reply to the
quoted form by a grammar, so every quote is a sentence of the source its marker names, and what the user is
streamed is the checked claims without their quotes."""

from __future__ import annotations

import dataclasses
import re

import pytest

from chat.engine.ask import ask
from chat.engine.services import Services, open_pool
from chat.sampling import preset
from chat.types import ABSTAIN_TEXT, Question
from retrieval.filters import EVERYTHING
from retrieval.rerank import load_reranker
from tests.corpus import ZEPHYR, documents, store_documents

pytestmark = pytest.mark.slow

LINE = re.compile(r"^(?P<claim>[^\[«»\n]+) \[(?P<n>\d+)\] «(?P<quote>[^»\n]+)»$")


@pytest.fixture
def services(url, conn, embedder, settings, llm):
    store_documents(conn, embedder, settings, [*documents(), ZEPHYR])
    quoted = dataclasses.replace(settings, answer=dataclasses.replace(settings.answer, quotes=True))
    pool = open_pool(url, 2)
    yield Services(quoted, pool, embedder, load_reranker(settings.rerank), llm)
    pool.close()


def q(text: str) -> Question:
    return Question(text=text, conversation_id="quotes", scope=EVERYTHING, channel="cli", user_id=None,
                    sampling=preset("precise").with_overrides(seed=7))


def test_each_claim_quotes_a_sentence_of_its_source_and_the_user_sees_the_claim(services, conn) -> None:
    streamed: list[str] = []
    answer = ask(services, q("How often must the Zephyr-9 be descaled?"), streamed.append)
    lines = [x for x in answer.model_output.splitlines() if x != ABSTAIN_TEXT]  # a claim may be followed by it
    assert lines and all(LINE.match(x) for x in lines), answer.model_output  # the grammar's form, line by line
    sources = {s.number: s for s in answer.sources}
    for m in map(LINE.match, lines):
        assert m is not None
        shown = " ".join(sources[int(m["n"])].text.split())  # the passage as the model was shown it
        assert m["quote"] in shown, (m["quote"], shown)  # a sentence of the cited source, copied exactly
    assert not answer.abstained and "200" in answer.text and "«" not in answer.text
    assert any(c.uri == "zephyr9.md" for c in answer.citations), answer
    assert "".join(streamed) == answer.text  # nothing streamed is withdrawn
    row = conn.execute("SELECT prompt_name, answer FROM turns WHERE id = %s", (answer.turn_id,)).fetchone()
    assert row == ("answer-quoted", answer.text)


def test_a_question_the_sources_do_not_answer_is_declined(services) -> None:
    open_gate = dataclasses.replace(services, settings=dataclasses.replace(
        services.settings, answer=dataclasses.replace(services.settings.answer, min_similarity=-1.0)))
    streamed: list[str] = []
    answer = ask(open_gate, q("What is the capacity in litres of the Zephyr-9 water tank?"), streamed.append)
    assert answer.abstained and answer.text == ABSTAIN_TEXT and answer.citations == ()
    assert "".join(streamed) in ("", ABSTAIN_TEXT)
