"""Training and measuring pairs for the meaning checks, built from public data only.

Two tasks, one file format (``{"task", "first", "second", "label", "source", "kind"}``):
- ``support``: does ``second`` (a passage) state ``first`` (a claim)?
- ``answers``: does ``second`` (a sentence) answer ``first`` (a question)?

Sources:
- SciFact train claims with labelled evidence sentences: the evidence sentences (with a neighbour for context)
  SUPPORT a claim; CONTRADICT evidence and the abstract's other sentences do not.
- XQuAD dev, one half by article (evals/halves.py): the sentence holding the gold answer is supported by its
  paragraph window and answers its question; the same sentence with the answer swapped for another answer of the
  same paragraph (same kind: number or name), with its subject swapped, or negated is unsupported; a window without
  the sentence does not state it; the paragraph's other sentences and the question restated do not answer it.
Every pair says which half it came from, so training never sees the half that is reported.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evals import halves

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
SCIFACT = DATA / "scifact-claims"
XQUAD = DATA / "xquad" / "xquad.en.dev.json"
_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])")
_NUMBER = re.compile(r"\d")
_NAME = re.compile(r"\b(?:[A-Z][\w'’-]+)(?:\s+(?:of|the|de|von|van|and)?\s*[A-Z][\w'’-]+)*")
_AUX = re.compile(r"\b(is|was|are|were|has|had|have|can|could|will|would|did|does|do)\b")
_VERB_ED = re.compile(r"\b([a-z]{3,}ed)\b")
_STOP_NAMES = {"The", "A", "An", "In", "On", "At", "It", "This", "That", "These", "Those", "He", "She", "They",
               "However", "After", "Before", "During", "While", "When", "Although", "Its", "His", "Her", "Their"}


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _END.split(text) if s.strip()]


def _pair(task: str, first: str, second: str, label: int, source: str, kind: str, half: str) -> dict[str, Any]:
    return {"task": task, "first": first, "second": second, "label": label, "source": source, "kind": kind,
            "half": half}


def _window(sents: list[str], keep: list[int], rng: random.Random, extra: int = 1) -> str:
    lo = max(0, min(keep) - rng.randint(0, extra))
    hi = min(len(sents), max(keep) + 1 + rng.randint(0, extra))
    return " ".join(sents[lo:hi])


def scifact(rng: random.Random) -> Iterator[dict[str, Any]]:
    abstracts = {}
    for line in (SCIFACT / "abstract_sentences.jsonl").read_text().splitlines():
        rec = json.loads(line)
        abstracts[rec["doc_id"]] = rec["sentences"]
    for line in (SCIFACT / "claims_train.jsonl").read_text().splitlines():
        rec = json.loads(line)
        half = halves.half_of(f"scifact:{rec['claim_id']}")
        claim = rec["claim"]
        for doc in rec["cited_doc_ids"]:
            sents = abstracts.get(str(doc))
            if not sents:
                continue
            used: set[int] = set()
            for ev in rec["evidence"].get(str(doc), []):
                idx = sorted(i for i in ev["sentences"] if i < len(sents))
                if not idx:
                    continue
                used.update(idx)
                label = 1 if ev["label"] == "SUPPORT" else 0
                yield _pair("support", claim, _window(sents, idx, rng), label, "scifact", ev["label"].lower(), half)
            rest = [i for i in range(len(sents)) if i not in used and all(abs(i - u) > 1 for u in used)]
            if len(rest) >= 2:
                start = rng.randrange(0, len(rest) - 1)
                yield _pair("support", claim, " ".join(sents[i] for i in rest[start:start + 3]), 0, "scifact",
                            "not_enough_info", half)


def _answer_sentence(context: str, start: int, answer: str) -> tuple[list[str], int] | None:
    sents = sentences(context)
    pos = 0
    for i, s in enumerate(sents):
        at = context.find(s, pos)
        if at <= start < at + len(s) and answer in s:
            return sents, i
        pos = at + len(s) if at >= 0 else pos
    return None


def _swap_answer(sentence: str, answer: str, others: list[str], rng: random.Random) -> str | None:
    numeric = bool(_NUMBER.search(answer))
    same = [o for o in others if bool(_NUMBER.search(o)) == numeric and o.lower() not in sentence.lower()
            and answer.lower() not in o.lower()]
    if not same:
        return None
    return sentence.replace(answer, rng.choice(same), 1)


def _swap_subject(sentence: str, answer: str, names: list[str], rng: random.Random) -> str | None:
    mine = [m.group(0) for m in _NAME.finditer(sentence) if m.group(0) not in _STOP_NAMES
            and m.group(0) not in answer and answer not in m.group(0)]
    if not mine:
        return None
    target = mine[0]
    pool = [n for n in names if n != target and n not in sentence and n not in answer]
    if not pool:
        return None
    return sentence.replace(target, rng.choice(pool), 1)


def _negate(sentence: str) -> str | None:
    m = _AUX.search(sentence)
    if m:
        return sentence[:m.end()] + " not" + sentence[m.end():]
    m = _VERB_ED.search(sentence)
    if m:
        return sentence[:m.start()] + "did not " + m.group(1)[:-2] + sentence[m.end():]
    return None


def _clause(sentence: str, answer: str) -> str | None:
    """The part of ``sentence`` between commas or semicolons that holds the answer: a shorter claim the sentence
    still states, as a model's answer often is."""
    parts = [p.strip() for p in re.split(r"[,;]\s+|\s+and\s+", sentence)]
    for p in parts:
        if answer in p and len(p.split()) >= 4 and p != sentence:
            return p[:1].upper() + p[1:].rstrip(".") + "."
    return None


_WH = re.compile(r"^(what|which|who|whom|whose|when|where|why|how( many| much| long| old)?)\b\s*", re.I)


def restated(question: str) -> str:
    """The question said back as if it were an answer: what a small model writes when it has none."""
    body = _WH.sub("", question.strip().rstrip("?")).strip()
    body = re.sub(r"^(is|was|are|were|did|does|do)\s+", "", body, flags=re.I)
    return (body[:1].upper() + body[1:] + ".") if body else question


def xquad(rng: random.Random, path: Path = XQUAD) -> Iterator[dict[str, Any]]:
    data = json.loads(path.read_text())["data"]
    for article in data:
        title = article["title"]
        half = halves.half_of(title)
        paragraphs = [p["context"] for p in article["paragraphs"]]
        for pi, para in enumerate(article["paragraphs"]):
            context = para["context"]
            answers = [a["text"] for qa in para["qas"] for a in qa["answers"][:1]]
            names = sorted({m.group(0) for m in _NAME.finditer(context) if m.group(0) not in _STOP_NAMES})
            for qa in para["qas"]:
                gold = qa["answers"][0]
                found = _answer_sentence(context, gold["answer_start"], gold["text"])
                if not found:
                    continue
                sents, i = found
                sentence, q = sents[i], qa["question"]
                window = _window(sents, [i], rng, extra=2)
                yield _pair("support", sentence, window, 1, "xquad", "gold_sentence", half)
                if (part := _clause(sentence, gold["text"])) is not None:
                    yield _pair("support", part, window, 1, "xquad", "clause", half)
                    yield _pair("answers", q, part, 1, "xquad", "clause", half)
                yield _pair("answers", q, sentence, 1, "xquad", "gold_sentence", half)
                others = [a for a in answers if a != gold["text"]]
                for kind, changed in (("answer_swap", _swap_answer(sentence, gold["text"], others, rng)),
                                      ("subject_swap", _swap_subject(sentence, gold["text"], names, rng)),
                                      ("negation", _negate(sentence))):
                    if changed and changed != sentence:
                        yield _pair("support", changed, window, 0, "xquad", kind, half)
                away = [j for j in range(len(sents)) if abs(j - i) > 1]
                if len(away) >= 2:
                    start = rng.randrange(0, len(away) - 1)
                    yield _pair("support", sentence, " ".join(sents[j] for j in away[start:start + 3]), 0, "xquad",
                                "not_in_window", half)
                elsewhere = [p for k, p in enumerate(paragraphs) if k != pi]
                if elsewhere:
                    yield _pair("support", sentence, rng.choice(elsewhere)[:1200], 0, "xquad", "other_paragraph",
                                half)
                neighbours = [s for j, s in enumerate(sents) if j != i and gold["text"] not in s]
                for s in rng.sample(neighbours, min(2, len(neighbours))):
                    yield _pair("answers", q, s, 0, "xquad", "neighbour", half)
                yield _pair("answers", q, restated(q), 0, "xquad", "restated", half)
                if elsewhere:
                    yield _pair("answers", q, rng.choice(sentences(rng.choice(elsewhere))), 0, "xquad",
                                "other_paragraph", half)


def build(seed: int = 13) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    return [*scifact(rng), *xquad(rng)]


def write(pairs: list[dict[str, Any]], out: Path) -> Path:
    out.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return out


if __name__ == "__main__":
    import collections
    ps = build()
    print(collections.Counter((p["task"], p["source"], p["kind"], p["half"], p["label"]) for p in ps))
    print(len(ps))
