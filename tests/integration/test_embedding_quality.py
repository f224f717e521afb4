"""The fast embedding backend keeps retrieval quality: on a labelled retrieval set
(harness/retrieval_set.py), OpenVINO's recall@5 is at least 0.99x torch fp32's and its
vectors are within 0.99 mean cosine of torch's. Both backends run the real bundled model."""

from __future__ import annotations

import numpy as np
import pytest

from infrastructure.embedder import LocalEmbedder
from harness import retrieval_set


@pytest.fixture(scope="module")
def labelled() -> retrieval_set.RetrievalSet:
    return retrieval_set.make(n_chunks=300, n_questions=300, seed=7)


@pytest.fixture(scope="module")
def vectors(labelled: retrieval_set.RetrievalSet) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for backend in ("torch", "openvino"):
        embedder = LocalEmbedder(backend=backend)
        out[backend] = (embedder.embed(labelled.chunks), embedder.embed(labelled.questions))
    return out


def _ranked(chunks: np.ndarray, questions: np.ndarray) -> list[list[int]]:
    return np.argsort(-(questions @ chunks.T), axis=1)[:, :10].tolist()


def test_the_labelled_set_is_neither_trivial_nor_hopeless(labelled, vectors) -> None:
    ranked = _ranked(*vectors["torch"])
    assert 0.5 < retrieval_set.recall_at(ranked, labelled.answers, 1) < 0.99
    assert retrieval_set.recall_at(ranked, labelled.answers, 5) > 0.8
    shuffled = [ranked[(i + 1) % len(ranked)] for i in range(len(ranked))]  # each question's ranking moved to the next
    assert retrieval_set.recall_at(shuffled, labelled.answers, 5) < 0.1


def test_openvino_keeps_recall_at_5_and_the_vectors(labelled, vectors) -> None:
    torch_chunks, torch_questions = vectors["torch"]
    fast_chunks, fast_questions = vectors["openvino"]
    for k in (1, 5):
        torch_recall = retrieval_set.recall_at(_ranked(torch_chunks, torch_questions), labelled.answers, k)
        fast_recall = retrieval_set.recall_at(_ranked(fast_chunks, fast_questions), labelled.answers, k)
        assert fast_recall >= 0.99 * torch_recall, (k, fast_recall, torch_recall)
    cosines = np.concatenate([(fast_chunks * torch_chunks).sum(1), (fast_questions * torch_questions).sum(1)])
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.98, (cosines.mean(), cosines.min())


def test_backends_have_their_own_model_ids() -> None:
    assert LocalEmbedder(backend="torch").model_name == "all-MiniLM-L6-v2"
    assert LocalEmbedder(backend="openvino").model_name == "all-MiniLM-L6-v2+openvino-bf16"
    with pytest.raises(ValueError, match="EMBED_BACKEND"):
        LocalEmbedder(backend="tensorflow")


def test_bad_backend_or_threshold_settings_say_what_to_set() -> None:
    from infrastructure.settings import SettingsError, load_settings

    assert load_settings({}).embed_backend == "openvino"
    assert load_settings({"EMBED_BACKEND": "torch", "VECTOR_APPROX_THRESHOLD": "0"}).vector_approx_threshold == 0
    with pytest.raises(SettingsError, match="EMBED_BACKEND"):
        load_settings({"EMBED_BACKEND": "tensorflow"})
    with pytest.raises(SettingsError, match="VECTOR_APPROX_THRESHOLD"):
        load_settings({"VECTOR_APPROX_THRESHOLD": "-1"})
