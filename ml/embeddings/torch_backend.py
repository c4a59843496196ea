"""fp32 embeddings with sentence-transformers on torch (CPU or CUDA)."""

from __future__ import annotations

import numpy as np

from ml.errors import ArtifactError
from ml.text import length_order


class TorchEmbedder:
    name = "torch-fp32"

    def __init__(self, model_path: str, device: str = "cpu") -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(model_path, device=device, local_files_only=True)
        dimension, max_length = self.model.get_embedding_dimension(), self.model.max_seq_length
        if dimension is None or max_length is None:
            raise ArtifactError(f"{model_path} does not declare its embedding size and window")
        self.dimension, self.max_length = int(dimension), int(max_length)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = length_order(texts)
        vectors = self.model.encode(
            [texts[i] for i in order],
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        out = np.empty_like(vectors, dtype=np.float32)
        out[order] = vectors
        return out


def create(model_path: str, device: str = "cpu", **_: object) -> TorchEmbedder:
    return TorchEmbedder(model_path, device=device)
