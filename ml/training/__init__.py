"""Fine-tuning: one runner shape for every kind (progress, cancellation, seeds, artifacts).

Trainers are backends like any other: a registry per kind, declared by dotted path and imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ml.registry import Registry

if TYPE_CHECKING:
    from ml.training.classifier import TrainResult
    from ml.training.embedding import EmbeddingTrainResult

# Each factory is called as trainer(spec=..., out_dir=..., callbacks=...).
CLASSIFIER_TRAINERS: Registry[TrainResult] = Registry(
    "classifier trainer",
    {"torch": "ml.training.classifier:train_classifier", "fake": "ml.fake:train_classifier"},
)
EMBEDDING_TRAINERS: Registry[EmbeddingTrainResult] = Registry(
    "embedding trainer",
    {"torch": "ml.training.embedding:train_embedding", "fake": "ml.fake:train_embedding"},
)
