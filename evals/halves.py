"""Tune on one half, report on the other: a fixed, content-derived split nothing can drift.

XQuAD dev is split by article (every question of an article falls in the same half, so no paragraph is seen
while tuning and again while reporting); SciFact train by query id. Thresholds and gates are chosen on ``tune``;
the README's figures come from ``report``. The official test splits are held out by the project's owners.
"""

from __future__ import annotations

import hashlib

HALVES = ("tune", "report")


def half_of(key: str) -> str:
    return HALVES[hashlib.sha256(key.encode()).digest()[0] % 2]


def check(half: str | None) -> str | None:
    if half not in (None, "all", *HALVES):
        raise ValueError(f"unknown half {half!r}; expected tune, report or all")
    return None if half in (None, "all") else half


def keep(key: str, half: str | None) -> bool:
    """Whether an item keyed ``key`` belongs to ``half`` (None or 'all': everything)."""
    return check(half) is None or half_of(key) == half
