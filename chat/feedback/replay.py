"""Feedback replayed as regression cases, and the curated golden set.

Every turn with a thumb (its latest one counts) is retrieved again with today's configuration, through the same
retrieve step the chain uses. An up-voted turn regresses when a chunk it cited is no longer among the re-ranked
sources; a down-voted turn is reported when its retrieved set changed (the hope being that it changed for the
better: the report lists them for a maintainer to re-ask). Golden cases must keep finding their expected chunks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from chat.engine.retrieve import retrieve
from chat.engine.services import Services
from chat.turns import reads
from core.access import OPERATOR, resolve
from retrieval import filters as grammar


@dataclass(frozen=True)
class Case:
    turn_id: str
    vote: int  # 1 up, -1 down, 0 golden
    question: str
    filters: list[dict[str, Any]]
    before: tuple[str, ...]  # re-ranked chunk ids the turn used, in order
    must_keep: tuple[str, ...]  # cited chunk ids (up-voted turns) or expected ones (golden cases)
    user: str | None = None  # replayed with this user's access, so a replay never sees more than the user did


@dataclass
class Replayed:
    turn_id: str
    vote: int
    question: str
    outcome: str  # kept | regressed | changed | unchanged | passed | failed
    missing: list[str] = field(default_factory=list)
    overlap: float = 1.0  # |before ∩ after| / |before ∪ after|


@dataclass
class ReplayReport:
    up: int
    down: int
    golden: int
    regressions: int
    changed_down: int
    golden_failed: int
    cases: list[Replayed]

    @property
    def regression_share(self) -> float:
        return self.regressions / self.up if self.up else 0.0

    @property
    def changed_down_share(self) -> float:
        return self.changed_down / self.down if self.down else 0.0

    def to_json(self) -> dict[str, Any]:
        return {**{k: v for k, v in asdict(self).items() if k != "cases"},
                "regression_share": round(self.regression_share, 4),
                "changed_down_share": round(self.changed_down_share, 4),
                "cases": [asdict(c) for c in self.cases]}


def feedback_cases(conn: psycopg.Connection) -> list[Case]:
    rows = reads.thumbed_turns(conn)
    cases = []
    for tid, value, question, flt, retrieved, citations, user, rated_bad in rows:
        before = tuple(r["chunk_id"] for r in sorted((r for r in retrieved if r.get("rerank_rank")),
                                                     key=lambda r: r["rerank_rank"]))
        # an up-voted answer must keep what it cited, except the sources its readers said were not what they needed
        cited = tuple(cid for c in citations if c["number"] not in rated_bad for cid in c["chunk_ids"])
        cases.append(Case(tid, int(value), question, flt, before, cited if value > 0 else (), user))
    return cases


def golden_cases(conn: psycopg.Connection) -> list[Case]:
    return [Case(str(tid) if tid else f"golden-{gid}", 0, q, flt, (), tuple(expected), user)
            for gid, tid, q, expected, flt, user in reads.golden(conn)]


def promote(conn: psycopg.Connection, turn_id: str, expected: list[str] | None = None,
            note: str | None = None) -> int:
    """Add a turn to the golden set; expected chunks default to the ones it cited."""
    row = reads.turn_for_golden(conn, turn_id)
    if row is None:
        raise ValueError(f"no turn with id {turn_id}")
    chunks = expected or [cid for c in row[2] for cid in c["chunk_ids"]]
    if not chunks:
        raise ValueError(f"turn {turn_id} cited nothing; name the chunks it should find with --expect CHUNK_ID")
    return reads.add_golden(conn, turn_id, row[0], row[1], chunks, note)


def _filters(raw: list[dict[str, Any]]) -> list[grammar.Filter]:
    return [grammar.make(f["field"], f["op"], f["value"]) for f in raw]


def replay(services: Services, n_sources: int | None = None, use: Any = "active") -> ReplayReport:
    """``use``: the learned retriever to replay with (chat.engine.retrieve.retrieve's ``use``)."""
    n = n_sources or services.settings.answer.sources
    out: list[Replayed] = []
    with services.pool.connection() as conn:
        cases = feedback_cases(conn) + golden_cases(conn)
        # each turn is replayed with its own asker's access, as resolved today
        scopes = {c.user: grammar.Scope.of(resolve(conn, c.user) if c.user else OPERATOR,
                                           services.settings.public_ungrouped) for c in cases}
    for case in cases:
        found = retrieve(services, case.question, scopes[case.user], _filters(case.filters), n, use)
        after = [h.chunk_id for h in found.reranked]
        union = set(case.before) | set(after)
        overlap = len(set(case.before) & set(after)) / len(union) if union else 1.0
        missing = [c for c in case.must_keep if c not in after]
        if case.vote > 0:
            outcome = "regressed" if missing else "kept"
        elif case.vote < 0:
            outcome = "changed" if set(after) != set(case.before) else "unchanged"
        else:
            outcome = "failed" if missing else "passed"
        out.append(Replayed(case.turn_id, case.vote, case.question, outcome, missing, round(overlap, 3)))
    return ReplayReport(
        up=sum(c.vote > 0 for c in out), down=sum(c.vote < 0 for c in out), golden=sum(c.vote == 0 for c in out),
        regressions=sum(c.outcome == "regressed" for c in out), changed_down=sum(c.outcome == "changed" for c in out),
        golden_failed=sum(c.outcome == "failed" for c in out), cases=out)
