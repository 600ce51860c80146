"""Training pairs from what users told us: (standalone question, passage) positives and their negatives.

Positives, strongest first: sources a user marked good (a thumb on the source itself), the cited sources of turns
rated up, and the expected chunks of promoted golden turns. Negatives: sources marked bad, and passages a turn
retrieved among its re-ranked few but did not cite when the turn was rated up (shown to the model, not used). A
source marked bad is never a positive, whatever else the turn says. Failed turns teach nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from chat.turns import reads
from retrieval.learned import Pair


@dataclass(frozen=True)
class Collected:
    pairs: tuple[Pair, ...]
    counts: dict[str, int] = field(default_factory=dict)  # where positives and negatives came from

    def split(self, held_out_share: float = 0.2) -> tuple[list[Pair], list[Pair]]:
        """(train, held out), split by turn with a stable hash: a turn's pairs stay on one side, and a pair keeps
        its side as feedback accumulates, so a later run is never scored on what an earlier one trained on."""
        train, held = [], []
        for p in self.pairs:
            bucket = int(hashlib.sha256(p.turn_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
            (held if bucket < held_out_share else train).append(p)
        return train, held


def _moves(conn: psycopg.Connection) -> Callable[[str], str]:
    """Where a rated chunk lives now: renamed files' chunks moved (retrieval/sources.py), followed to the end."""
    step = dict(reads.chunk_moves(conn))

    def now(chunk: str) -> str:
        seen = {chunk}
        while chunk in step and step[chunk] not in seen:
            chunk = step[chunk]
            seen.add(chunk)
        return chunk

    return now


def collect(conn: psycopg.Connection) -> Collected:
    """Every training pair the feedback, source ratings and golden set hold today."""
    turns: dict[str, dict] = {}
    rows = reads.rated_turns(conn)
    counts = {"turns_rated": len(rows), "positive_marked_good": 0, "positive_cited_up": 0, "positive_golden": 0,
              "negative_marked_bad": 0, "negative_retrieved_not_cited": 0}
    for tid, question, retrieved, citations, vote, good, bad in rows:
        cited = [c["chunk_ids"][0] for c in citations if c.get("chunk_ids")]
        shown = [r["chunk_id"] for r in sorted((r for r in retrieved if r.get("rerank_rank")),
                                               key=lambda r: r["rerank_rank"])]
        bad_set = set(bad)
        positives = {c: "positive_marked_good" for c in good if c not in bad_set}
        negatives = {c: "negative_marked_bad" for c in bad}
        if vote is not None and vote > 0:
            for c in cited:
                if c not in bad_set:
                    positives.setdefault(c, "positive_cited_up")
            for c in shown:
                if c not in cited and c not in positives:
                    negatives.setdefault(c, "negative_retrieved_not_cited")
        turns[tid] = {"question": question, "positives": positives, "negatives": negatives}
    for gid, tid, question, expected, _filters, _user in reads.golden(conn):
        key = tid or f"golden-{gid}"
        entry = turns.setdefault(key, {"question": question, "positives": {}, "negatives": {}})
        for c in expected:
            entry["positives"].setdefault(c, "positive_golden")
            entry["negatives"].pop(c, None)
    moved = _moves(conn)
    pairs = []
    for tid, entry in turns.items():
        negs = tuple(dict.fromkeys(moved(n) for n in entry["negatives"]))
        for n_origin in entry["negatives"].values():
            counts[n_origin] += 1
        for chunk, origin in entry["positives"].items():
            counts[origin] += 1
            pairs.append(Pair(entry["question"], moved(chunk), negs, tid))
    counts["pairs"] = len(pairs)
    return Collected(tuple(pairs), counts)
