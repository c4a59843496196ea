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


EMBEDDERS: Registry[Embedder] = Registry("embedding")
