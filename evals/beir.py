"""BEIR-layout datasets: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv."""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from evals import halves


@dataclass(frozen=True)
class Dataset:
    corpus: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


def load(folder: Path, split: str, limit: int | None = None, half: str | None = None) -> Dataset:
    """Load the queries that have judgements in ``split`` and fall in ``half`` (evals.halves; None: all), the
    first ``limit`` of them in file order."""
    corpus = folder / "corpus.jsonl"
    qrels_file = folder / "qrels" / f"{split}.tsv"
    for required in (corpus, folder / "queries.jsonl", qrels_file):
        if not required.exists():
            raise FileNotFoundError(f"{required} is missing; a BEIR folder has corpus.jsonl, queries.jsonl, "
                                    f"qrels/{split}.tsv")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_file.open() as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    queries: dict[str, str] = {}
    with (folder / "queries.jsonl").open() as fh:
        for line in fh:
            obj = json.loads(line)
            if str(obj["_id"]) in qrels and halves.keep(str(obj["_id"]), half):
                queries[str(obj["_id"])] = obj["text"]
    if limit:
        queries = dict(list(queries.items())[:limit])
    return Dataset(corpus, queries, {q: qrels[q] for q in queries})
