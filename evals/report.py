"""Eval reports: thresholds checked, and a folder with a Markdown summary, the figures as JSON, and PNG plots."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evals.answers import Result
from evals.retrieval import ConfigResult

THRESHOLDS = Path(__file__).with_name("thresholds.toml")


def load_thresholds(path: Path = THRESHOLDS) -> dict[str, dict[str, float]]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def check_thresholds(thresholds: dict[str, dict[str, float]], retrieval: list[ConfigResult] | None,
          answers: Result | None) -> list[str]:
    """Every figure below its minimum (or above a ``max_`` ceiling), as readable lines; empty when all pass."""
    failures = []
    if retrieval:
        by_mode = {r.mode: asdict(r) for r in retrieval[0].results}
        for key, minimum in thresholds.get("retrieval", {}).items():
            mode, metric = key.rsplit(".", 1)
            if mode not in by_mode:
                failures.append(f"retrieval {key} is missing (a threshold whose figure is missing fails)")
            elif by_mode[mode][metric] < minimum:
                failures.append(f"retrieval {key} = {by_mode[mode][metric]:.4f} < {minimum}")
    if answers:
        figures = answers.to_json()
        for key, bound in thresholds.get("answers", {}).items():
            name = key.removeprefix("max_")
            value = figures.get(name)
            if value is None:
                failures.append(f"answers {name} is missing (a threshold whose figure is missing fails)")
                continue
            if key.startswith("max_") and value > bound:
                failures.append(f"answers {name} = {value:.4f} > {bound}")
            elif not key.startswith("max_") and value < bound:
                failures.append(f"answers {name} = {value:.4f} < {bound}")
    return failures


def _plots(out: Path, retrieval: list[ConfigResult] | None, answers: Result | None) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    made = []
    if retrieval:
        labels, values = [], []
        for cfg in retrieval:
            for r in cfg.results:
                labels.append(f"{cfg.label}\n{r.mode}" if cfg is not retrieval[0] else r.mode)
                values.append(r.ndcg_at_10)
        fig, ax = plt.subplots(figsize=(max(6, len(labels) * 0.9), 4.5))
        ax.bar(range(len(values)), values, color="#3b6ea5")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("nDCG@10")
        ax.set_ylim(min(values) - 0.05, max(values) + 0.02)
        for i, v in enumerate(values):
            ax.text(i, v + 0.003, f"{v:.3f}", ha="center", fontsize=7)
        ax.set_title("Retrieval: nDCG@10 per configuration")
        fig.tight_layout()
        fig.savefig(out / "retrieval_ndcg.png", dpi=120)
        plt.close(fig)
        made.append("retrieval_ndcg.png")
    if answers and answers.latency_samples:
        stages = [k for k in ("embed_ms", "search_ms", "rerank_ms", "condense_ms", "first_token_ms", "total_ms")
                  if answers.latency_samples.get(k)]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.boxplot([[v / 1000 for v in answers.latency_samples[k]] for k in stages], showfliers=True)
        ax.set_xticks(range(1, len(stages) + 1), [k.removesuffix("_ms") for k in stages])
        ax.set_yscale("log")
        ax.set_ylabel("seconds (log scale)")
        ax.set_title(f"Answer latency per stage ({answers.questions} questions)")
        fig.tight_layout()
        fig.savefig(out / "answer_latency.png", dpi=120)
        plt.close(fig)
        made.append("answer_latency.png")
    return made


def write(out: Path, retrieval: list[ConfigResult] | None, answers: Result | None, failures: list[str],
          meta: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    figures = {"created": datetime.now(UTC).isoformat(timespec="seconds"), **meta,
               "retrieval": [{"label": c.label, "chunk_tokens": c.chunk_tokens, "ef_search": c.ef_search,
                              "results": [asdict(r) for r in c.results]} for c in retrieval or []],
               "answers": answers.to_json() if answers else None, "threshold_failures": failures}
    (out / "figures.json").write_text(json.dumps(figures, indent=2))
    plots = _plots(out, retrieval, answers)
    lines = [f"# citewise eval report — {figures['created']}", ""]
    for k, v in meta.items():
        lines.append(f"- {k}: {v}")
    if retrieval:
        lines += ["", "## Retrieval", "",
                  "| configuration | mode | nDCG@10 | Recall@10 | Recall@100 | MRR@10 | p50 ms |",
                  "| --- | --- | --- | --- | --- | --- | --- |"]
        for c in retrieval:
            for r in c.results:
                lines.append(f"| {c.label} | {r.mode} | {r.ndcg_at_10:.4f} | {r.recall_at_10:.4f} | "
                             f"{r.recall_at_100:.4f} | {r.mrr_at_10:.4f} | {r.p50_ms:.1f} |")
    if answers:
        a = answers
        lines += ["", "## Answers", "", "| figure | value |", "| --- | --- |"]
        for name in ("questions", "unanswerable", "exact_match", "f1", "gold_contained", "citation_precision",
                     "citation_recall", "cited_gold_answer", "false_abstention", "correct_abstention",
                     "failures"):
            lines.append(f"| {name} | {getattr(a, name)} |")
        lines += ["", "| stage | p50 ms | p95 ms |", "| --- | --- | --- |"]
        lines += [f"| {k} | {v.get('p50')} | {v.get('p95')} |" for k, v in a.latency_ms.items()]
    lines += ["", "## Thresholds (evals/thresholds.toml)", ""]
    lines += [f"- FAIL: {f}" for f in failures] or ["- all met"]
    lines += [""] + [f"![{p}]({p})" for p in plots]
    (out / "summary.md").write_text("\n".join(lines) + "\n")
    return out
