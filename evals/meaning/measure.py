"""Support checks measured side by side on labelled claim/passage pairs.

A pairs file holds one JSON object a line: ``{"claim": ..., "passage": ..., "label": "supported" | "unsupported"}``
(extra keys are kept and ignored). Every check gives each pair a score; a pair is judged supported when its score
reaches the check's threshold. Printed per check: balanced accuracy (the mean of the recall on each class, so a
check that says "supported" to everything scores 0.5 however the set is balanced), precision on "supported" (of
the pairs it would show, the share that are supported), recall (of the supported pairs, the share it shows), and
milliseconds per claim on this machine.

    citewise eval support --pairs FILE.jsonl [--check meaning|words|llm] [--json]

The checks:
- ``meaning``: the trained cross-encoder the answer path uses (chat/engine/meaning.py), at CITEWISE_VERIFY_MIN_STATED;
- ``words``: the share of the claim's content terms found in the passage, at CITEWISE_VERIFY_MIN_SUPPORT (the check
  answers relied on before);
- ``llm``: the configured LLM asked "does the passage state the claim?", read from the probabilities of its first
  token ("yes" against "no"), the passage first so a server that caches prompts reuses it across claims.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

LABELS = ("supported", "unsupported")


@dataclass(frozen=True)
class Pair:
    claim: str
    passage: str
    supported: bool


def load(path: Path) -> list[Pair]:
    """The pairs of ``path``; a malformed line is an error naming the line and what is wrong with it."""
    out: list[Pair] = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
            if not isinstance(rec, dict):
                raise ValueError("expected a JSON object")
            missing = [k for k in ("claim", "passage", "label") if not isinstance(rec.get(k), str)]
            if missing:
                raise ValueError(f"missing or not text: {', '.join(missing)}")
            if rec["label"] not in LABELS:
                raise ValueError(f"label {rec['label']!r} is not one of {', '.join(LABELS)}")
        except ValueError as exc:
            raise ValueError(f"{path}:{i}: {exc}") from exc
        out.append(Pair(rec["claim"], rec["passage"], rec["label"] == "supported"))
    if not out:
        raise ValueError(f"{path}: no pairs")
    return out


@dataclass(frozen=True)
class PairResult:
    check: str
    threshold: float
    pairs: int
    supported: int
    unsupported: int
    balanced_accuracy: float
    precision: float | None  # of the pairs judged supported, the share that are
    recall: float | None  # of the supported pairs, the share judged supported
    unsupported_caught: float | None  # of the unsupported pairs, the share judged unsupported
    ms_per_claim: float
    failed: int = 0  # pairs the check could not score (counted as judged unsupported)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def figures(check: str, threshold: float, pairs: Sequence[Pair], scores: Sequence[float | None],
            seconds: float) -> PairResult:
    said = [s is not None and s >= threshold for s in scores]
    tp = sum(p.supported and s for p, s in zip(pairs, said, strict=True))
    fp = sum(not p.supported and s for p, s in zip(pairs, said, strict=True))
    pos = sum(p.supported for p in pairs)
    neg = len(pairs) - pos
    recall, caught = (tp / pos if pos else 0.0), ((neg - fp) / neg if neg else 0.0)
    return PairResult(check, threshold, len(pairs), pos, neg, round((recall + caught) / 2, 4), _ratio(tp, tp + fp),
                      _ratio(tp, pos), _ratio(neg - fp, neg), round(1000 * seconds / max(len(pairs), 1), 1),
                      sum(s is None for s in scores))


def curve(pairs: Sequence[Pair], scores: Sequence[float | None], points: Iterable[float]) -> list[PairResult]:
    return [figures("", t, pairs, scores, 0.0) for t in points]


def words_scores(pairs: Sequence[Pair]) -> list[float | None]:
    from chat.engine.citations import MARKER, best_support
    from retrieval import keywords

    return [best_support(MARKER.sub(" ", p.claim), [p.passage], keywords.terms) for p in pairs]


def meaning_scores(pairs: Sequence[Pair]) -> list[float | None]:
    from chat.engine import meaning
    from chat.engine.citations import MARKER

    model = meaning.shared()
    return [model.support(" ".join(MARKER.sub(" ", p.claim).split()), [p.passage]) for p in pairs]


JUDGE_SYSTEM = "You check facts. Reply with one word: yes or no."


def llm_score(client: Any, model: str, pair: Pair) -> float | None:
    """P(yes) / (P(yes) + P(no)) of the LLM's first token; None when the endpoint gives no probabilities."""
    reply = client.chat.completions.create(
        model=model, temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=10,
        messages=[{"role": "system", "content": JUDGE_SYSTEM},
                  {"role": "user", "content": f"Passage:\n{pair.passage}\n\nClaim: {pair.claim}\n\n"
                                              "Does the passage state the claim? Answer yes or no."}])
    content = reply.choices[0].logprobs.content if reply.choices[0].logprobs else None
    if not content:
        return None
    p = {"yes": 0.0, "no": 0.0}
    for top in content[0].top_logprobs:
        word = top.token.strip().lower()
        if word in p:
            p[word] += math.exp(top.logprob)
    total = p["yes"] + p["no"]
    return p["yes"] / total if total else None


def llm_scores(pairs: Sequence[Pair]) -> list[float | None]:
    from openai import OpenAI

    from chat.engine.llm import endpoint
    from core.settings import Settings

    llm = endpoint(Settings.from_env().llm)
    client = OpenAI(base_url=llm.base_url, api_key=llm.api_key)
    out: list[float | None] = []
    for p in pairs:
        try:
            out.append(llm_score(client, llm.model, p))
        except Exception:  # a failed judgement is counted as a failure (a "no"), never skipped
            out.append(None)
    return out


CHECKS: dict[str, Callable[[Sequence[Pair]], list[float | None]]] = {
    "meaning": meaning_scores, "words": words_scores, "llm": llm_scores}


def threshold_of(check: str) -> float:
    from core.settings import Settings

    v = Settings.from_env().verify
    return {"meaning": v.min_stated, "words": v.min_support, "llm": 0.5}[check]


def run(check: str, pairs: Sequence[Pair], threshold: float | None = None) -> tuple[PairResult, list[float | None]]:
    if check not in CHECKS:
        raise ValueError(f"no such check {check!r}; expected {', '.join(CHECKS)}")
    started = time.perf_counter()
    scores = CHECKS[check](pairs)
    seconds = time.perf_counter() - started
    t = threshold_of(check) if threshold is None else threshold
    return figures(check, t, pairs, scores, seconds), scores
