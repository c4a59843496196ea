"""Sentence embeddings: backends behind one protocol, chosen through a registry."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from ml.registry import Registry


class Embedder(Protocol):
    name: str
    dimension: int

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text, in input order."""
        ...


# Imported on first use: naming a backend here pulls in nothing heavy.
EMBEDDERS: Registry[Embedder] = Registry(
    "embedding",
    {
        "torch-fp32": "ml.embeddings.torch_backend:create",
        "onnx-int8": "ml.embeddings.onnx_backend:create",
        "fake": "ml.fake:create_embedder",
    },
)
