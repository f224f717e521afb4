"""all-MiniLM-L6-v2 on OpenVINO: the bundled tokenizer and the IR built by ``embedder_export``.

Compiled with ``INFERENCE_PRECISION_HINT=bf16``: on a CPU with AVX512_BF16 or AMX the matrix
products run in bf16 (about twice the fp32 rate; vectors within 1e-4 cosine of torch fp32),
elsewhere OpenVINO computes in fp32. Texts are sorted by length and padded per batch, so a
batch of short texts costs what short texts cost. Neither torch nor transformers is imported.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PRECISION = "bf16"


class OpenVinoModel:
    """``encode(texts, batch_size)``: unit-length float32 rows, in the order of ``texts``.
    Not thread-safe (one infer request); the caller serializes calls."""

    def __init__(self, xml: Path, model_path: Path, max_tokens: int, threads: int) -> None:
        import openvino as ov
        from tokenizers import Tokenizer

        self.max_tokens = max_tokens
        self._tokenizer = Tokenizer.from_file(str(model_path / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.no_padding()  # the file asks for 128; batches are padded here instead
        core = ov.Core()
        config = {"INFERENCE_PRECISION_HINT": PRECISION, "INFERENCE_NUM_THREADS": threads,
                  "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}
        self._compiled = core.compile_model(core.read_model(str(xml)), "CPU", config)
        self._request = self._compiled.create_infer_request()
        self.precision = str(self._compiled.get_property("INFERENCE_PRECISION_HINT"))

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        """Tokenized once, sorted by token count, each batch padded to its own longest."""
        pieces = [e.ids for e in self._tokenizer.encode_batch(list(texts))]
        order = sorted(range(len(pieces)), key=lambda i: len(pieces[i]), reverse=True)
        out = np.empty((len(texts), 384), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            out[rows] = self._run([pieces[i] for i in rows])
        return out

    def _run(self, pieces: list[list[int]]) -> Any:
        ids = np.zeros((len(pieces), max(len(p) for p in pieces)), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, p in enumerate(pieces):
            ids[row, :len(p)] = p
            mask[row, :len(p)] = 1
        result = self._request.infer({"input_ids": ids, "attention_mask": mask})
        return next(iter(result.values()))
