from __future__ import annotations

import numpy as np
import pytest

from ml.api import embed
from ml.errors import InvalidInput

pytestmark = pytest.mark.slow


def test_packaged_minilm_gives_384d_unit_vectors(minilm_embedder):
    vectors = minilm_embedder.encode(["The card has not arrived yet.", "Shares fell 5% after earnings."])
    assert vectors.shape == (2, 384)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_similar_sentences_are_closer_than_unrelated_ones(minilm_embedder):
    a, b, c = minilm_embedder.encode(
        [
            "My card still hasn't arrived",
            "When will my new card be delivered?",
            "Oil prices rose sharply today",
        ]
    )
    assert float(a @ b) > float(a @ c) + 0.2


def test_length_sorted_batches_keep_input_order(minilm_embedder):
    texts = ["short", "a much longer sentence about bank transfers and fees " * 5, "medium length text here"]
    together = minilm_embedder.encode(texts, batch_size=2)
    one_by_one = np.vstack([minilm_embedder.encode([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)


def test_awkward_inputs_embed_without_errors(minilm_embedder):
    texts = ["", "x" * 100_000, b"caf\xe9 \xff bytes", "混合 scripts ✨🚀 and emoji", "\x00\x07control"]
    vectors = embed(texts, backend="torch-fp32")
    assert vectors.shape == (5, 384)
    assert np.isfinite(vectors).all()


def test_a_bare_string_or_non_text_is_refused():
    with pytest.raises(InvalidInput, match="single string"):
        embed("not a list")
    with pytest.raises(InvalidInput, match="got int"):
        embed([1, 2])


def test_unknown_backend_is_a_clear_error():
    with pytest.raises(InvalidInput, match="unknown embedding backend 'gpu-magic'"):
        embed(["x"], backend="gpu-magic")
