"""The meaning checks (chat/engine/meaning.py) with the shipped weights, and their place in the answer path."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from typer.testing import CliRunner

from chat.engine import meaning
from chat.engine.context import Source
from chat.engine.verify import SentenceStream, verify
from core.settings import VerifySettings
from evals.meaning import measure

PASSAGE = ("Super Bowl 50 was an American football game to determine the champion of the National Football League "
           "for the 2015 season. The American Football Conference champion Denver Broncos defeated the National "
           "Football Conference champion Carolina Panthers 24–10 to earn their third Super Bowl title. The game was "
           "played on February 7, 2016, at Levi's Stadium in the San Francisco Bay Area at Santa Clara, California.")
HALFTIME = "Beyoncé and Bruno Mars performed at the halftime show, which Coldplay headlined."


@pytest.fixture(scope="module")
def model() -> meaning.MeaningModel:
    return meaning.shared()


def test_probabilities_are_per_passage_deterministic_and_remembered(model) -> None:
    claim = "The Denver Broncos defeated the Carolina Panthers 24–10 to earn their third Super Bowl title."
    each = model.support_each(claim, [HALFTIME, PASSAGE])
    assert len(each) == 2 and all(0.0 < p < 1.0 for p in each)
    assert model.support(claim, [HALFTIME, PASSAGE]) == max(each)
    assert model.support_each(claim, [PASSAGE]) == [each[1]]  # the same row read again gives the same number
    assert ("support", claim, PASSAGE) in model._cache


def test_the_question_said_back_scores_below_its_answer(model) -> None:
    q = "Who won Super Bowl 50?"
    assert model.answers(q, "The Denver Broncos won Super Bowl 50 [1].") > model.answers(q, "Super Bowl 50 was won.")


def test_a_long_passage_is_read_in_windows_that_cover_every_sentence(model) -> None:
    long = " ".join(f"Sentence number {i} says that item {i} weighs {i * 3} kilograms." for i in range(60))
    windows = model.windows(long)
    assert len(windows) > 1
    assert all(len(model.tok.tokenize(w)) <= 200 for w in windows)
    for i in (0, 31, 59):
        assert any(f"item {i} weighs" in w for w in windows)
    right = model.support("Item 59 weighs 177 kilograms.", [long])
    assert right > model.support("Item 59 weighs 12 kilograms.", [long])


ON = replace(VerifySettings(), meaning=True)


def _stream(raw: str, sources: list[Source], question: str, cfg: VerifySettings = ON):
    shown: list[str] = []
    stream = SentenceStream(sources, question, cfg, "", shown.append, meaning=meaning.shared())
    stream.feed(raw)
    return stream.close(), "".join(shown)


def test_a_lead_no_source_states_makes_the_answer_an_abstention() -> None:
    sources = [Source(1, (), PASSAGE), Source(2, (), HALFTIME)]
    raw = "The Carolina Panthers defeated the Denver Broncos 24–10 [1]. They won their third Super Bowl title [1]."
    strict = replace(ON, min_stated=0.999)  # no sentence of this reply reaches it
    verdict, shown = _stream(raw, sources, "Who won Super Bowl 50?", strict)
    assert verdict.abstained and verdict.abstain_reason == "not_stated"
    assert "Panthers defeated" not in shown and "third Super Bowl" not in shown  # the rest is not trusted either
    # with the meaning checks off, word overlap alone lets the swapped claim through
    assert not verify(raw, sources, "Who won Super Bowl 50?", replace(VerifySettings(), meaning=False)).abstained


def test_a_wrong_marker_is_moved_to_the_source_the_check_finds_states_the_sentence(model) -> None:
    sentence = "The Denver Broncos defeated the Carolina Panthers 24–10 to earn their third Super Bowl title"
    sources = [Source(1, (), HALFTIME), Source(2, (), PASSAGE)]
    p_halftime, p_passage = model.support_each(sentence + ".", [HALFTIME, PASSAGE])
    assert p_passage > p_halftime
    between = replace(ON, min_stated=(p_halftime + p_passage) / 2, min_answers=0.0)
    verdict, shown = _stream(f"{sentence} [1].", sources, "Who won Super Bowl 50?", between)
    assert not verdict.abstained and verdict.cited == (2,) and "[2]" in shown and "[1]" not in shown
    assert verdict.auto_cited == 1 and verdict.model_cited == (1,)


def test_a_lead_that_does_not_answer_is_an_abstention(model) -> None:
    q, lead = "Who won Super Bowl 50?", "The Denver Broncos won Super Bowl 50 [1]."
    p = model.answers(q, "The Denver Broncos won Super Bowl 50.")
    above = replace(ON, min_stated=0.0, min_answers=min(1.0, p + 0.01))
    verdict, _ = _stream(lead, [Source(1, (), PASSAGE)], q, above)
    assert verdict.abstained and verdict.abstain_reason == "off_question"
    below = replace(ON, min_stated=0.0, min_answers=max(0.0, p - 0.01))
    assert not _stream(lead, [Source(1, (), PASSAGE)], q, below)[0].abstained


def _pairs_file(tmp_path, rows) -> object:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_eval_support_scores_any_pairs_file(tmp_path) -> None:
    from citewise.cli import app

    rows = [{"claim": "The Broncos won Super Bowl 50.", "passage": PASSAGE, "label": "supported"},
            {"claim": "The Panthers won Super Bowl 50.", "passage": PASSAGE, "label": "unsupported"},
            {"claim": "The game was played in Santa Clara.", "passage": PASSAGE, "label": "supported"},
            {"claim": "Coldplay played at Levi's Stadium in 2014.", "passage": PASSAGE, "label": "unsupported"}]
    path = _pairs_file(tmp_path, rows)
    result = CliRunner().invoke(app, ["eval", "support", "--pairs", str(path), "--json"])
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert figures["pairs"] == 4 and figures["supported"] == 2 and figures["check"] == "meaning"
    assert figures["threshold"] == VerifySettings().min_stated and figures["ms_per_claim"] > 0
    assert 0.0 <= figures["balanced_accuracy"] <= 1.0
    words = CliRunner().invoke(app, ["eval", "support", "--pairs", str(path), "--check", "words", "--json",
                                     "--threshold", "0.5"])
    pairs = measure.load(path)
    expected = measure.figures("words", 0.5, pairs, measure.words_scores(pairs), 0.0)
    got = json.loads(words.output)
    assert words.exit_code == 0 and got["balanced_accuracy"] == expected.balanced_accuracy
    assert got["recall"] == 1.0  # overlap passes both supported claims (and the subject swap)


def test_a_malformed_pairs_file_names_its_line(tmp_path) -> None:
    from citewise.cli import app

    path = _pairs_file(tmp_path, [{"claim": "a", "passage": "b", "label": "supported"},
                                  {"claim": "a", "passage": "b", "label": "maybe"}])
    result = CliRunner().invoke(app, ["eval", "support", "--pairs", str(path)])
    assert result.exit_code != 0 and "pairs.jsonl:2" in result.output and "maybe" in result.output
    with pytest.raises(ValueError, match="missing or not text: passage"):
        measure.load(_pairs_file(tmp_path, [{"claim": "a", "label": "supported"}]))


def test_balanced_accuracy_is_half_for_a_check_that_says_yes_to_everything() -> None:
    pairs = [measure.Pair("a", "b", True)] + [measure.Pair("c", "d", False)] * 9
    res = measure.figures("x", 0.5, pairs, [0.9] * 10, 1.0)
    assert res.balanced_accuracy == 0.5 and res.precision == 0.1 and res.recall == 1.0
    failed = measure.figures("x", 0.5, pairs, [None] * 10, 1.0)  # a failed judgement is a "no", never missing
    assert failed.failed == 10 and failed.recall == 0.0 and failed.balanced_accuracy == 0.5
