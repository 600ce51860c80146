"""Percentiles, computed one way for every eval, benchmark and load script: the nearest-rank method (the
smallest value with at least q% of the values at or below it), so p95 of 20 samples is the 19th, not an
interpolation between samples that never happened."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        raise ValueError("no values to take a percentile of")
    if not 0 < q <= 100:
        raise ValueError(f"q={q} is out of range; expected (0, 100]")
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def latency(values: Iterable[float], unit: str = "", digits: int | None = 1) -> dict[str, float]:
    """``{"p50", "p95", "n"}`` (each name followed by ``unit``, e.g. ``_ms``); empty when there are no values."""
    values = list(values)
    if not values:
        return {}
    r = (lambda v: round(v, digits)) if digits is not None else (lambda v: v)
    return {f"p50{unit}": r(percentile(values, 50)), f"p95{unit}": r(percentile(values, 95)), "n": len(values)}
