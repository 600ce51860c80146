"""The user guide asked as a new user asks it: questions written by reading ``docs/``, through the whole chain.

``evals/data/guide_questions.jsonl`` holds answerable questions, each with the passage that answers it, the
files that hold it and its gold answers (groups of alternatives: a reply must hold one of every group), and
questions the guide does not answer (the right reply is an abstention). How they were written is in
``evals/data/README.md``. The guide is ingested into an isolated database, so the user's own data never mixes in.

The reply scored is what the user was streamed (the verified sentences as they arrived), checked to be the final
answer. A failed answer is a wrong one. Gold answers are matched case-insensitively on their own (not inside a
longer word or number), after citation markers and Markdown code marks are removed. Nothing is tuned on this set.

    citewise eval guide [--json]
"""

from __future__ import annotations

import json
import re
import statistics
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chat.desk.frontdesk import AskRequest, FrontDesk
from chat.engine.citations import MARKER
from chat.engine.services import Services
from core import db
from core.settings import Settings
from evals import stats
from evals.isolated import isolated_database
from retrieval.embed import Embedder
from retrieval.ingest import IngestOptions, ingest
from retrieval.types import content_hash

ROOT = Path(__file__).resolve().parent.parent
QUESTIONS = Path(__file__).resolve().parent / "data" / "guide_questions.jsonl"


def load(path: Path = QUESTIONS) -> list[dict[str, Any]]:
    """The question set; a malformed line is an error naming it."""
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            if row["kind"] == "answerable" and not (row["answers"] and row["docs"] and row["passage"]):
                raise ValueError("an answerable question needs answers, docs and passage")
            if row["kind"] not in ("answerable", "unanswerable"):
                raise ValueError(f"kind {row['kind']!r} is not answerable or unanswerable")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{i}: {exc}") from exc
        rows.append(row)
    return rows


def holds(reply: str, answers: list[list[str]]) -> bool:
    """Whether ``reply`` holds one alternative of every group of gold answers."""
    text = MARKER.sub(" ", reply).replace("`", "").lower()
    return all(any(re.search(rf"(?<![\w.]){re.escape(a.lower())}(?![\w])", text) for a in group)
               for group in answers)


def prepare(settings: Settings, embedder: Embedder, docs: Path = ROOT / "docs") -> str:
    """The guide ingested into its own database (reused while the guide and the settings are unchanged)."""
    files = sorted(p for p in docs.rglob("*") if p.is_file())
    key = content_hash(embedder.name, settings.chunk, *(p.read_bytes().decode("utf-8", "replace") for p in files))
    url = isolated_database(db.database_url(settings), f"citewise_eval_guide_{key[:10]}")
    report = ingest(url, embedder, [docs], settings, IngestOptions(source="citewise-docs"))
    if report.failed:
        raise RuntimeError(f"{report.failed} guide files failed to ingest: {report.failures[:3]}")
    return url


@dataclass
class GuideResult:
    answerable: int
    unanswerable: int
    false_abstention: float
    gold_contained: float
    model_citation_precision: float | None  # the model's own markers naming a file that holds the answer
    citation_precision: float | None  # the citations shown, after the verifier's repair
    correct_abstention: float
    failures: int
    streamed_differs: int  # replies whose streamed text was not the final answer (must be 0)
    latency_ms: dict[str, dict[str, float]] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _share(xs: list[float]) -> float | None:
    return round(statistics.fmean(xs), 4) if xs else None


def run(services: Services, questions: list[dict[str, Any]], seed: int = 0, on_progress=None) -> GuideResult:
    desk = FrontDesk(services)
    rows, stages = [], {}
    abst = {"answerable": 0, "unanswerable": 0}
    asked = {"answerable": 0, "unanswerable": 0}
    contained: list[float] = []
    own: list[float] = []
    shown: list[float] = []
    failures = differs = 0
    for i, q in enumerate(questions):
        kind = q["kind"]
        asked[kind] += 1
        streamed: list[str] = []
        t = time.perf_counter()
        try:
            answer = desk.ask(AskRequest(text=q["question"], channel="eval", user_id="eval",
                                         conversation_id=f"eval:{uuid.uuid4()}", preset="precise", seed=seed,
                                         operator=True),
                              streamed.append)
        except Exception as exc:  # a failed answer is a wrong one: a refusal of an answerable question, and no
            failures += 1  # right abstention on an unanswerable one
            if kind == "answerable":
                abst[kind] += 1
                contained.append(0.0)
            rows.append({"id": q["id"], "kind": kind, "question": q["question"], "error": str(exc)})
            continue
        reply = "".join(streamed)
        differs += reply.strip() != answer.text.strip()
        abst[kind] += answer.abstained
        row = {"id": q["id"], "kind": kind, "question": q["question"], "streamed": reply,
               "abstained": answer.abstained, "reason": answer.abstain_reason,
               "cited": [c.uri.rsplit("/", 1)[-1] for c in answer.citations], "model_output": answer.model_output,
               "sources": [{"number": c.number, "uri": c.uri, "text": c.text} for c in answer.sources],
               "first_verified_ms": answer.latency.get("first_verified_ms")}
        if kind == "answerable":
            ok = not answer.abstained and holds(reply, q["answers"])
            contained.append(float(ok))
            row["gold_contained"] = ok
            by_number = {c.number: c.uri.rsplit("/", 1)[-1] for c in answer.sources}
            mine = [by_number.get(n) in q["docs"] for n in answer.model_cited]
            if mine:
                own.append(sum(mine) / len(mine))
            theirs = [c.uri.rsplit("/", 1)[-1] in q["docs"] for c in answer.citations]
            if theirs:
                shown.append(sum(theirs) / len(theirs))
        rows.append(row)
        for key, value in answer.latency.items():
            stages.setdefault(key, []).append(value)
        stages.setdefault("wall_ms", []).append((time.perf_counter() - t) * 1000)
        if on_progress:
            on_progress(i + 1, len(questions))
    return GuideResult(
        answerable=asked["answerable"], unanswerable=asked["unanswerable"],
        false_abstention=round(abst["answerable"] / max(1, asked["answerable"]), 4),
        gold_contained=_share(contained) or 0.0, model_citation_precision=_share(own), citation_precision=_share(shown),
        correct_abstention=round(abst["unanswerable"] / max(1, asked["unanswerable"]), 4), failures=failures,
        streamed_differs=differs, latency_ms={k: stats.latency(v) for k, v in stages.items() if k.endswith("_ms")},
        rows=rows)
