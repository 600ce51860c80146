"""The verifier judged against sentences labelled by reading (evals/support.py, evals/data/)."""

from __future__ import annotations

import json
import tomllib

import pytest

from chat.engine.verify import units
from core.settings import VerifySettings
from evals import support

SOURCES = [{"number": 1, "uri": "p1", "text": "The Broncos beat the Panthers 24 to 10 in Super Bowl 50 at Levi's "
                                              "Stadium in Santa Clara, California."},
           {"number": 2, "uri": "p2", "text": "Beyoncé and Bruno Mars performed at the halftime show."}]


def _record(*sentences: tuple[str, list[int], str]) -> dict:
    return {"qa": "q", "kind": "answerable", "question": "Who won Super Bowl 50?", "gold": ["Broncos"],
            "gold_paragraph": "p1", "sources": SOURCES,
            "sentences": [{"text": t, "cited": c, "label": lab} for t, c, lab in sentences]}


def test_units_are_what_the_verifier_judges() -> None:
    assert units("The Broncos won [1]. They scored 24 points [1].\n\nBruno Mars sang [2].") == [
        "The Broncos won [1].", "They scored 24 points [1].", "Bruno Mars sang [2]."]
    assert units("") == [] and units("no full stop") == ["no full stop"]
    # initials, abbreviations and a quoted ellipsis end no unit (labelling found "Tiddeman. [2][3]" and ". ." cut off)
    assert units("Sung to a tune by Maria C. Tiddeman [1]. It dates from 1875 [1].") == [
        "Sung to a tune by Maria C. Tiddeman [1].", "It dates from 1875 [1]."]
    assert units('He said, "I am here to . . . submit cheerfully." [1]') == ['He said, "I am here to . . . submit '
                                                                          'cheerfully." [1]']
    assert units("Some, e.g. vocational schools, are private [1]. Most are not.") == [
        "Some, e.g. vocational schools, are private [1].", "Most are not."]


def test_each_verdict_is_counted_where_it_belongs() -> None:
    rec = _record(
        ("The Broncos beat the Panthers 24 to 10 in Super Bowl 50 [1].", [1], "supported"),  # shown: TP
        ("The Broncos beat the Panthers in Miami, Florida, on a rainy Tuesday evening [1].", [1],
         "unsupported"),  # overlaps enough to pass: FP
        ("Tom Brady threw five touchdown passes for the New England Patriots that night [1].", [1],
         "unsupported"),  # withheld: TN
        ("The sources do not contain the answer.", [], "not_a_claim"),
        ("Levi's Stadium in Santa Clara hosted the game.", [], "supported"),  # no marker: not scored
    )
    result = support.score([rec], VerifySettings())
    assert (result.labelled, result.supported, result.unsupported, result.uncited) == (3, 1, 2, 1)
    assert result.true_positive == 1 and result.true_negative + result.false_positive == 2
    assert result.true_negative >= 1, result
    assert result.recall == 1.0 and result.model_supported == pytest.approx(1 / 3, abs=1e-3)
    assert result.unsupported_withheld == pytest.approx(result.true_negative / 2)


def test_a_malformed_label_names_its_line(tmp_path) -> None:
    path = tmp_path / "labels.jsonl"
    good = _record(("The Broncos won [1].", [1], "supported"))
    bad = _record(("The Broncos won [3].", [3], "supported"))
    path.write_text(json.dumps(good) + "\n" + json.dumps(_record(("x [1].", [1], "maybe"))) + "\n")
    with pytest.raises(ValueError, match=r"labels.jsonl:2: label 'maybe'"):
        support.load(path)
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(ValueError, match=r":1: cites \[3\]"):
        support.load(path)


def test_the_shipped_labelled_set_and_the_verifier_against_it() -> None:
    """The labelled claims from real runs (at least the 150 the issue asks for, see evals/data/); the verifier's
    figures on them meet evals/thresholds.toml's [support] floors."""
    records = support.load()
    claims = [s for r in records for s in r["sentences"] if s["label"] != "not_a_claim" and s["cited"]]
    assert len(claims) >= 150, len(claims)
    assert {s["label"] for s in claims} == {"supported", "unsupported"}, "both classes, or P/R mean nothing"
    result = support.score(records, VerifySettings())
    limits = tomllib.loads(support.THRESHOLDS.read_text())["support"]
    for name, minimum in limits.items():
        value = getattr(result, name)
        assert value is not None and value >= minimum, f"{name} {value} < {minimum}"


def test_the_labelling_helper_merges_every_sentence_or_says_which_is_missing(tmp_path) -> None:
    from evals import label

    rec = _record(("The Broncos won [1].", [1], ""), ("The sources do not contain the answer.", [], ""))
    for s in rec["sentences"]:
        del s["label"]
    raw, labels, out = tmp_path / "raw.jsonl", tmp_path / "labels.txt", tmp_path / "out.jsonl"
    raw.write_text(json.dumps(rec) + "\n")
    labels.write_text("0.0 S stated\n")
    assert label.merge(raw, labels, out) == 1
    merged = support.load(out)[0]["sentences"]
    assert [(s["label"], s["note"]) for s in merged] == [("supported", "stated"), ("not_a_claim", "declines")]
    labels.write_text("0.0 X what\n")
    with pytest.raises(SystemExit, match="label 'X'"):
        label.merge(raw, labels, out)
    labels.write_text("0.1 S stated\n")
    with pytest.raises(SystemExit, match=r"sentence 0\.0 has no label"):
        label.merge(raw, labels, out)
