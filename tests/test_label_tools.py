"""The labelling tools behind the twice-labelled sets (evals/label.py): agreement, settling, deduplication."""

from __future__ import annotations

import json

import pytest

from evals import label


def _write(path, lines) -> object:
    path.write_text("\n".join(lines) + "\n")
    return path


def test_kappa_is_one_for_agreement_and_zero_at_chance(tmp_path) -> None:
    a = {"0.0": "S", "0.1": "U", "1.0": "S", "1.1": "N"}
    assert label.kappa(a, a)[:2] == (1.0, 1.0)
    # two readers who each say S half the time, independently of each other: agreement 0.5, kappa 0
    k, agree, differ = label.kappa({"0": "S", "1": "S", "2": "U", "3": "U"}, {"0": "S", "1": "U", "2": "S", "3": "U"})
    assert (k, agree, differ) == (0.0, 0.5, ["1", "2"])


def test_settle_takes_agreement_and_the_third_reading_where_they_differ(tmp_path) -> None:
    a = _write(tmp_path / "a.txt", ["0.0 S fine", "0.1 U no", "1.0 S"])
    b = _write(tmp_path / "b.txt", ["0.0 S", "0.1 S yes", "1.0 S"])
    c = _write(tmp_path / "c.txt", ["0.1 U the passage says 1990"])
    out = tmp_path / "final.txt"
    assert label.settle(a, b, c, out) == 3
    assert label.read_labels(out) == {"0.0": "S", "0.1": "U", "1.0": "S"}
    with pytest.raises(SystemExit, match=r"no third reading for 0\.1"):
        label.settle(a, b, _write(tmp_path / "empty.txt", [""]), out)


def test_combine_keeps_a_claim_asked_again_once(tmp_path) -> None:
    rec = {"qa": "q", "kind": "answerable", "question": "Who?", "gold": [], "gold_paragraph": None, "sources": [],
           "sentences": [{"text": "The Broncos won [1].", "cited": [1], "label": None}]}
    other = {**rec, "sentences": [{"text": "the  broncos won [1].", "cited": [1], "label": None},
                                  {"text": "They scored 24 [1].", "cited": [1], "label": None}]}
    r1, r2 = tmp_path / "1.jsonl", tmp_path / "2.jsonl"
    r1.write_text(json.dumps(rec) + "\n")
    r2.write_text(json.dumps(other) + "\n")
    n, dropped = label.combine(tmp_path / "all.jsonl", [r1, r2])
    texts = [s["text"] for line in (tmp_path / "all.jsonl").read_text().splitlines()
             for s in json.loads(line)["sentences"]]
    assert (n, dropped) == (2, 1) and texts == ["The Broncos won [1].", "They scored 24 [1]."]
