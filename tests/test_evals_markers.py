"""The evals read citation markers through the one grammar (chat.engine.citations): a range counts as its numbers."""

from __future__ import annotations

from chat.types import Answer, Citation
from evals import gates, support
from evals.answers import contains, exact_match, normalize
from evals.guide import holds
from evals.squad import QA


def _source(n: int, uri: str) -> Citation:
    return Citation(n, (f"c{n}",), f"d{n}", f"T{n}", "squad", uri, 0, 5, f"passage {n}")


def test_answer_metrics_take_a_range_marker_out_like_a_single_one() -> None:
    assert normalize("Paris [1-3].") == normalize("Paris [1].") == "paris"
    assert exact_match("Paris [1–3]", ("Paris",)) == 1.0
    assert contains("It is 12 [2-3] metres", ("12 metres",)) == 1.0
    assert holds("Set it to 8192 [1-2].", [["8192"]])


def test_exported_sentences_count_a_range_as_each_source_it_names() -> None:
    sources = tuple(_source(n, f"p{n}") for n in (1, 2, 3, 4))
    answer = Answer(text="", citations=(), sources=sources, abstained=True, turn_id=None, standalone_question="q",
                    prompt_version=None, model=None, model_output="Paris is the capital [1-3].")
    record = support.export(QA("q1", "Capital?", ("Paris",), "p1", "France"), answer, "answerable")
    assert record["sentences"][0]["cited"] == [1, 2, 3]


def test_the_models_citation_precision_counts_a_range_as_each_source_it_names() -> None:
    rec = {"kind": "answerable", "raw": "Paris [1-3].", "gold_paragraph": "p1",
           "sources": [{"number": n, "uri": f"p{n}"} for n in (1, 2, 3, 4)]}
    assert gates.model_citation_precision([rec]) == round(1 / 3, 4)
