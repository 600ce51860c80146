"""Answer quality through the full chain on SQuAD-format data (XQuAD): every question asked as a user would.

Scores per answerable question: exact match and token F1 against the gold answers (SQuAD's normalisation), whether
a gold answer is contained in the answer (a generative answer is a sentence, so EM is harsh), citation precision
(share of cited passages that are the gold paragraph) and recall (gold paragraph cited), and whether the cited
passages contain a gold answer. Support is judged by the gold data, never by the word-overlap test the chain itself
applies (a metric that reuses the check it judges holds by construction). Answers are matched on token boundaries
("2" does not match "2016"). A failed answer counts as a wrong one, never drops out of a denominator.
Unanswerable questions are the same questions with their own article filtered out: the right reply is an
abstention. Deterministic for a seed: the sample, the sampling seed and the corpus are fixed.
"""

from __future__ import annotations

import random
import re
import statistics
import string
import time
import uuid
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from chat.frontdesk import FrontDesk, Request
from chat.types import Answer
from evals import squad, stats
from retrieval import filters

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_MARKER = re.compile(r"\[\d+(?:\s*,\s*\d+)*\]")
_PUNCTUATION = frozenset(string.punctuation)


def normalize(text: str) -> str:
    text = _MARKER.sub(" ", text.lower())
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, golds: tuple[str, ...]) -> float:
    return float(any(normalize(prediction) == normalize(g) for g in golds))


def f1(prediction: str, golds: tuple[str, ...]) -> float:
    best = 0.0
    pred = normalize(prediction).split()
    for gold in golds:
        ref = normalize(gold).split()
        common = sum((Counter(pred) & Counter(ref)).values())
        if common:
            p, r = common / len(pred), common / len(ref)
            best = max(best, 2 * p * r / (p + r))
    return best


def contains(prediction: str, golds: tuple[str, ...]) -> float:
    """1.0 when a gold answer occurs in the prediction as whole tokens (after SQuAD normalisation)."""
    text = f" {normalize(prediction)} "
    return float(any(normalize(g) and f" {normalize(g)} " in text for g in golds))


def cited_gold(answer: Answer, golds: tuple[str, ...]) -> float:
    """1.0 when a passage the answer cites contains a gold answer: the citation can back the reply."""
    return float(any(contains(c.text, golds) for c in answer.citations))


@dataclass
class Result:
    questions: int
    unanswerable: int
    exact_match: float
    f1: float
    gold_contained: float
    citation_precision: float | None
    citation_recall: float
    cited_gold_answer: float
    false_abstention: float
    correct_abstention: float | None
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    failures: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    latency_samples: dict[str, list[float]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run(desk: FrontDesk, qas: list[squad.QA], limit: int, seed: int, unanswerable_share: float = 0.25,
        on_progress=None) -> Result:
    """Ask ``limit`` sampled questions (answerable), plus ``unanswerable_share`` of them with their article removed."""
    rng = random.Random(seed)
    sample = rng.sample(qas, min(limit, len(qas)))
    flipped = set(rng.sample(range(len(sample)), round(len(sample) * unanswerable_share)))
    em, f1s, cont, precision, recall, backed, stages = [], [], [], [], [], [], {}
    false_abstain = answerable = correct_abstain = failures = 0
    examples = []
    for i, qa in enumerate(sample):
        hide = i in flipped
        flt = (filters.make("meta.article", "!=", qa.article),) if hide else ()
        q = Request(qa.question, "eval", "eval", f"eval:{uuid.uuid4()}", flt, "precise", seed=seed, operator=True)
        t = time.perf_counter()
        try:
            answer = desk.ask(q)
        except Exception as exc:  # a failed answer is a wrong one: counted, scored zero, and the run goes on
            failures += 1
            examples.append({"id": qa.id, "question": qa.question, "error": str(exc)})
            if not hide:
                answerable += 1
                for scores in (em, f1s, cont, recall, backed):
                    scores.append(0.0)
            continue
        for key, value in answer.latency.items():
            stages.setdefault(key, []).append(value)
        stages.setdefault("wall_ms", []).append((time.perf_counter() - t) * 1000)
        if hide:
            correct_abstain += answer.abstained
        else:
            answerable += 1
            false_abstain += answer.abstained
            em.append(0.0 if answer.abstained else exact_match(answer.text, qa.answers))
            f1s.append(0.0 if answer.abstained else f1(answer.text, qa.answers))
            cont.append(0.0 if answer.abstained else contains(answer.text, qa.answers))
            gold = [c.uri == qa.paragraph_id for c in answer.citations]
            if gold:
                precision.append(sum(gold) / len(gold))
            recall.append(float(any(gold)))
            backed.append(0.0 if answer.abstained else cited_gold(answer, qa.answers))
        if len(examples) < 20:
            examples.append({"id": qa.id, "question": qa.question, "gold": list(qa.answers), "unanswerable": hide,
                             "answer": answer.text, "abstained": answer.abstained,
                             "cited": [c.uri for c in answer.citations]})
        if on_progress:
            on_progress(i + 1, len(sample))

    def mean(xs: list[float]) -> float:
        return round(statistics.fmean(xs), 4) if xs else 0.0

    return Result(
        questions=len(sample), unanswerable=len(flipped), exact_match=mean(em), f1=mean(f1s),
        gold_contained=mean(cont), citation_precision=mean(precision) if precision else None,
        citation_recall=mean(recall), cited_gold_answer=mean(backed),
        false_abstention=round(false_abstain / answerable, 4) if answerable else 0.0,
        correct_abstention=round(correct_abstain / len(flipped), 4) if flipped else None,
        latency_ms={k: stats.latency(v) for k, v in stages.items()}, failures=failures, examples=examples,
        latency_samples={k: [round(x, 1) for x in v] for k, v in stages.items()})
