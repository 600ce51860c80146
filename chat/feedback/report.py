"""Settings vs. outcomes: the thumbs-up rate by preset, sampling buckets, cited source and abstention, and the
rates of single passages users rated (per source and per document).

Each turn counts once, with its latest thumb. Rates carry Wilson 95% intervals, so a bucket of three votes reads as
the guess it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import psycopg

from chat.turns import reads

_BUCKETS = {  # (low inclusive, high exclusive, label)
    "temperature": ((0.0, 0.2, "0–0.2"), (0.2, 0.5, "0.2–0.5"), (0.5, 1.0, "0.5–1"), (1.0, 9.0, "1–2")),
    "top_p": ((0.0, 0.8, "<0.8"), (0.8, 0.95, "0.8–0.95"), (0.95, 9.0, "0.95–1")),
    "top_k": ((1, 11, "1–10"), (11, 41, "11–40"), (41, 101, "41–100"), (101, 10**6, ">100")),
}


@dataclass(frozen=True)
class Group:
    dimension: str
    value: str
    n: int
    up: int

    @property
    def rate(self) -> float:
        return self.up / self.n if self.n else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.up, self.n)

    def to_json(self) -> dict:
        lo, hi = self.interval
        return {"dimension": self.dimension, "value": self.value, "n": self.n, "up": self.up,
                "rate": round(self.rate, 4), "ci95": [round(lo, 4), round(hi, 4)]}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _bucket(name: str, value) -> str:
    if value is None:
        return "unset"
    for lo, hi, label in _BUCKETS[name]:
        if lo <= float(value) < hi:
            return label
    return str(value)


def groups(conn: psycopg.Connection) -> list[Group]:
    rows = reads.latest_thumbs(conn)
    counts: dict[tuple[str, str], list[int]] = {}

    def add(dim: str, val: str, up: bool) -> None:
        c = counts.setdefault((dim, val), [0, 0])
        c[0] += 1
        c[1] += up

    for value, sampling, abstained, sources in rows:
        up = value > 0
        add("preset", str(sampling.get("preset", "unset")), up)
        for name in ("temperature", "top_p", "top_k"):
            add(name, _bucket(name, sampling.get(name)), up)
        add("abstained", "yes" if abstained else "no", up)
        for src in sources or ["(none cited)"]:
            add("source", src, up)
    # thumbs on single sources ("this passage was / was not what I needed"): each user's latest, per source
    for value, source, title in reads.source_ratings(conn):
        add("rated passages by source", source, value > 0)
        add("rated passages by document", title, value > 0)
    return [Group(d, v, n, u) for (d, v), (n, u) in sorted(counts.items())]


def chart(found: list[Group], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({g.dimension for g in found})
    fig, axes = plt.subplots(len(dims), 1, figsize=(7, 1.2 + 0.45 * len(found)), squeeze=False,
                             gridspec_kw={"height_ratios": [max(1, sum(g.dimension == d for g in found))
                                                            for d in dims]})
    for ax, dim in zip(axes[:, 0], dims, strict=True):
        part = [g for g in found if g.dimension == dim]
        ys = range(len(part))
        ax.barh(ys, [g.rate for g in part], color="#4c8c4a",
                xerr=[[g.rate - g.interval[0] for g in part], [g.interval[1] - g.rate for g in part]], capsize=3)
        ax.set_yticks(list(ys), [f"{g.value} (n={g.n})" for g in part], fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_title(dim, fontsize=9, loc="left")
    axes[-1, 0].set_xlabel("thumbs-up rate (Wilson 95% interval)")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
