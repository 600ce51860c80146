"""Train the meaning checks' cross-encoder and write the weights the product ships.

    make meaning-model            # = python -m evals.meaning.train --out chat/engine/meaning

One MiniLM-L6 cross-encoder (the all-MiniLM-L6-v2 weights the product already loads, so nothing new is
downloaded) learns both tasks of evals/meaning/pairs.py, told apart by the first segment's prefix ("claim:" or
"question:"). It trains on the tune half only. The word embeddings stay frozen, so what ships is the difference
from the base model: the six transformer layers and the head, int8 per row (about 11 MB), applied to the base
weights when the product loads it (chat/engine/meaning.py).

Reproducible: a fixed seed, one thread order; the same command on the same data gives the same file up to
float rounding across CPUs.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from pathlib import Path
from typing import Any

from evals.meaning import pairs as pairdata


def _batches(rows: list[dict[str, Any]], size: int, rng: random.Random) -> list[list[dict[str, Any]]]:
    rows = rows[:]
    rng.shuffle(rows)
    return [rows[i:i + size] for i in range(0, len(rows), size)]


def train(rows: list[dict[str, Any]], out: Path, epochs: int = 2, batch: int = 16, lr: float = 1e-4,
          seed: int = 13, log_every: int = 50) -> dict[str, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from chat.engine import meaning

    torch.manual_seed(seed)
    rng = random.Random(seed)
    base = meaning.base_path()
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    for name, p in model.named_parameters():
        if name.startswith("bert.embeddings"):
            p.requires_grad = False
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    steps = epochs * math.ceil(len(rows) / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / (0.1 * steps)) * max(0.0, (steps - s) / steps))
    pos = {t: sum(r["label"] for r in rows if r["task"] == t) for t in meaning.TASKS}
    neg = {t: sum(1 - r["label"] for r in rows if r["task"] == t) for t in meaning.TASKS}
    weight = {t: (neg[t] / pos[t]) if pos[t] else 1.0 for t in meaning.TASKS}  # balance classes per task
    model.train()
    started, step = time.perf_counter(), 0
    for epoch in range(epochs):
        for group in _batches(rows, batch, rng):
            enc = meaning.encode(tok, [(r["task"], r["first"], r["second"]) for r in group])
            logits = model(**enc).logits.squeeze(-1)
            labels = torch.tensor([float(r["label"]) for r in group])
            w = torch.tensor([weight[r["task"]] if r["label"] else 1.0 for r in group])
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, weight=w)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % log_every == 0:
                print(f"epoch {epoch + 1} step {step}/{steps} loss {loss.item():.3f} "
                      f"{(time.perf_counter() - started):.0f} s", flush=True)
    meta = {"pairs": len(rows), "epochs": epochs, "batch": batch, "lr": lr, "seed": seed,
            "seconds": round(time.perf_counter() - started), "by_task": {t: [pos[t], neg[t]] for t in meaning.TASKS}}
    meaning.save_delta(model, out, meta)
    return meta


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("chat/engine/meaning"))
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--limit", type=int, default=0, help="train on this many pairs only (a quick check)")
    ap.add_argument("--pairs-out", type=Path, help="also write every pair built (both halves) to this file")
    args = ap.parse_args(argv)
    rows = pairdata.build()
    if args.pairs_out:
        pairdata.write(rows, args.pairs_out)
    tune = [r for r in rows if r["half"] == "tune"]
    if args.limit:
        tune = random.Random(0).sample(tune, min(args.limit, len(tune)))
    print(f"training on {len(tune)} tune-half pairs of {len(rows)}", flush=True)
    meta = train(tune, args.out, epochs=args.epochs)
    print(json.dumps(meta))


if __name__ == "__main__":
    main()
