"""BM25 k1/b side by side on a BEIR dataset: recompute only the keyword weights in the existing eval database,
score keyword, hybrid and hybrid+rerank for each pair. The database is left with the last pair's weights, so end
the grid with the configured default.

    python -m evals.bm25_grid --dataset ../shared/data/scifact --split train 0.9,0.4 1.2,0.75

Scored on the tune half of the queries by default (evals/halves.py): the parameters are chosen there and the
README reports the other half.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from core import db
from core.settings import Settings
from evals.retrieval import evaluate, prepare
from retrieval import keywords
from retrieval.embed import load_embedder, passage_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--half", default="tune", help="tune (default), report or all")
    parser.add_argument("pairs", nargs="+", help="k1,b")
    args = parser.parse_args()
    cfg = Settings.from_env()
    embedder = load_embedder(cfg.embedding)
    url, data = prepare(cfg, embedder, args.dataset, args.split, half=args.half)
    with db.connect(url) as conn:
        rows = conn.execute("SELECT c.id, d.title, c.heading_path, c.text FROM chunks c "
                            "JOIN documents d ON d.id = c.document_id").fetchall()
        avgdl = conn.execute("SELECT sum(keyword_len)::float / count(*) FROM chunks").fetchone()[0]
    inputs = [(cid, passage_text(t, tuple(h), x)) for cid, t, h, x in rows]
    for pair in args.pairs:
        k1, b = (float(v) for v in pair.split(","))
        with db.connect(url) as conn, conn.cursor() as cur:
            cur.execute("CREATE TEMP TABLE kv (id text, v sparsevec)")
            with cur.copy("COPY kv FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["text", "sparsevec"])
                for cid, text in inputs:
                    copy.write_row((cid, keywords.document_vector(text, avgdl, k1, b).vector))
            cur.execute("UPDATE chunks c SET keyword_vec = kv.v FROM kv WHERE kv.id = c.id")
            conn.commit()
        s = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, bm25_k1=k1, bm25_b=b))
        results = evaluate(url, data, embedder, s, ["keyword", "hybrid", "hybrid+rerank"])
        print(f"k1={k1} b={b} " + " ".join(f"{r.mode}={r.ndcg_at_10:.4f}" for r in results), flush=True)


if __name__ == "__main__":
    main()
