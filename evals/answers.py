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

from chat.desk.frontdesk import AskRequest, FrontDesk
from chat.engine.citations import MARKER
from chat.types import Answer
from evals import halves, squad, stats, support
from retrieval import filters

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize(text: str) -> str:
    text = MARKER.sub(" ", text.lower())
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
    unanswerable: int  # asked with their article filtered out
    exact_match: float
    f1: float
    gold_contained: float
    citation_precision: float | None  # after verification (markers repaired), as the user sees them
    citation_recall: float
    cited_gold_answer: float
    false_abstention: float
    correct_abstention: float | None  # article filtered out
    hard_unanswerable: int = 0  # asked with only their gold paragraph withheld (same topic, answer absent)
    hard_abstention: float | None = None
    model_citation_precision: float | None = None  # the model's own markers, before any repair
    model_citation_recall: float | None = None
    repaired_share: float | None = None  # answers whose markers the verifier added or moved
    dropped_share: float | None = None  # answers from which the verifier left sentences out
    false_abstention_by_reason: dict[str, int] = field(default_factory=dict)
    half: str = "all"
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    failures: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)
    latency_samples: dict[str, list[float]] = field(default_factory=dict)
    sentences: list[dict[str, Any]] = field(default_factory=list)  # answers to label (evals/support.py)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class _Tally:
    def __init__(self) -> None:
        self.scores: dict[str, list[float]] = {k: [] for k in ("em", "f1", "cont", "precision", "recall", "backed",
                                                                "model_precision", "model_recall", "repaired",
                                                                "dropped")}
        self.abstained = {"answerable": 0, "article": 0, "paragraph": 0}
        self.asked = {"answerable": 0, "article": 0, "paragraph": 0}
        self.reasons: Counter[str] = Counter()

    def add(self, kind: str, qa: squad.QA, answer: Answer | None) -> None:
        """Score one reply; ``None`` is a failed answer, scored as a wrong one."""
        self.asked[kind] += 1
        if kind != "answerable":
            self.abstained[kind] += bool(answer and answer.abstained)
            return
        sc = self.scores
        if answer is None:  # counts against false abstention too: the user got no answer
            self.abstained[kind] += 1
            self.reasons["failed"] += 1
            for k in ("em", "f1", "cont", "recall", "backed", "model_recall"):
                sc[k].append(0.0)
            return
        if answer.abstained:
            self.abstained[kind] += 1
            self.reasons[answer.abstain_reason or "unknown"] += 1
        said = "" if answer.abstained else answer.text
        sc["em"].append(exact_match(said, qa.answers) if said else 0.0)
        sc["f1"].append(f1(said, qa.answers) if said else 0.0)
        sc["cont"].append(contains(said, qa.answers) if said else 0.0)
        gold = [c.uri == qa.paragraph_id for c in answer.citations]
        if gold:
            sc["precision"].append(sum(gold) / len(gold))
        sc["recall"].append(float(any(gold)))
        sc["backed"].append(cited_gold(answer, qa.answers) if said else 0.0)
        uri = {c.number: c.uri for c in answer.sources}
        own = [uri.get(n) == qa.paragraph_id for n in answer.model_cited]
        if own:
            sc["model_precision"].append(sum(own) / len(own))
        sc["model_recall"].append(float(any(own)))
        if said:
            sc["repaired"].append(float(answer.auto_cited > 0))
            sc["dropped"].append(float(answer.dropped > 0))


def _mean(xs: list[float]) -> float | None:
    return round(statistics.fmean(xs), 4) if xs else None


def run(desk: FrontDesk, qas: list[squad.QA], limit: int, seed: int, unanswerable_share: float = 0.25,
        on_progress=None, hard_share: float = 0.0, half: str | None = None) -> Result:
    """Ask ``limit`` sampled questions from ``half`` of the articles: ``unanswerable_share`` of them with their
    article filtered out, ``hard_share`` with only their gold paragraph withheld, the rest answerable."""
    rng = random.Random(seed)
    pool = [qa for qa in qas if halves.keep(qa.article, half)]
    sample = rng.sample(pool, min(limit, len(pool)))
    flipped = set(rng.sample(range(len(sample)), round(len(sample) * unanswerable_share)))
    rest = [i for i in range(len(sample)) if i not in flipped]
    hard = set(rng.sample(rest, min(len(rest), round(len(sample) * hard_share))))
    tally, stages, failures, examples, sentences = _Tally(), {}, 0, [], []
    for i, qa in enumerate(sample):
        kind = "article" if i in flipped else "paragraph" if i in hard else "answerable"
        flt = {"article": (filters.make("meta.article", "!=", qa.article),),
               "paragraph": (filters.make("uri", "!=", qa.paragraph_id),), "answerable": ()}[kind]
        t = time.perf_counter()
        try:
            answer = desk.ask(AskRequest(text=qa.question, channel="eval", user_id="eval",
                                         conversation_id=f"eval:{uuid.uuid4()}", filters=flt, preset="precise",
                                         seed=seed, operator=True))
        except Exception as exc:  # a failed answer is a wrong one: counted, scored zero, and the run goes on
            failures += 1
            examples.append({"id": qa.id, "question": qa.question, "error": str(exc)})
            tally.add(kind, qa, None)
            continue
        tally.add(kind, qa, answer)
        for key, value in answer.latency.items():
            stages.setdefault(key, []).append(value)
        stages.setdefault("wall_ms", []).append((time.perf_counter() - t) * 1000)
        sentences.append(support.export(qa, answer, kind))
        if len(examples) < 20:
            examples.append({"id": qa.id, "question": qa.question, "gold": list(qa.answers), "kind": kind,
                             "answer": answer.text, "abstained": answer.abstained, "reason": answer.abstain_reason,
                             "cited": [c.uri for c in answer.citations]})
        if on_progress:
            on_progress(i + 1, len(sample))
    sc, asked, abst = tally.scores, tally.asked, tally.abstained
    return Result(
        questions=len(sample), unanswerable=len(flipped), exact_match=_mean(sc["em"]) or 0.0,
        f1=_mean(sc["f1"]) or 0.0, gold_contained=_mean(sc["cont"]) or 0.0, citation_precision=_mean(sc["precision"]),
        citation_recall=_mean(sc["recall"]) or 0.0, cited_gold_answer=_mean(sc["backed"]) or 0.0,
        false_abstention=round(abst["answerable"] / asked["answerable"], 4) if asked["answerable"] else 0.0,
        correct_abstention=round(abst["article"] / asked["article"], 4) if asked["article"] else None,
        hard_unanswerable=len(hard),
        hard_abstention=round(abst["paragraph"] / asked["paragraph"], 4) if asked["paragraph"] else None,
        model_citation_precision=_mean(sc["model_precision"]), model_citation_recall=_mean(sc["model_recall"]),
        repaired_share=_mean(sc["repaired"]), dropped_share=_mean(sc["dropped"]),
        false_abstention_by_reason=dict(tally.reasons), half=half or "all",
        latency_ms={k: stats.latency(v) for k, v in stages.items()}, failures=failures, examples=examples,
        latency_samples={k: [round(x, 1) for x in v] for k, v in stages.items()}, sentences=sentences)
