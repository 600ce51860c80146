"""SQuAD-format data (XQuAD): paragraphs become documents, questions keep their gold paragraph and answers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class QA:
    id: str
    question: str
    answers: tuple[str, ...]
    paragraph_id: str  # the BEIR-style _id of the gold paragraph document
    article: str


def load(path: Path) -> tuple[list[dict], list[QA]]:
    """(paragraph documents in BEIR JSONL form with ``metadata.article``, questions)."""
    data = json.loads(path.read_text())["data"]
    docs, qas = [], []
    for article in data:
        title = article["title"]
        for i, para in enumerate(article["paragraphs"]):
            pid = f"{title}-{i}"
            docs.append({"_id": pid, "title": title, "text": para["context"], "metadata": {"article": title}})
            for qa in para["qas"]:
                qas.append(QA(qa["id"], qa["question"], tuple(a["text"] for a in qa["answers"]), pid, title))
    return docs, qas


def write_corpus(docs: list[dict], out: Path) -> Path:
    with out.open("w") as fh:
        for d in docs:
            fh.write(json.dumps(d) + "\n")
    return out
