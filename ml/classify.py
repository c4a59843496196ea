"""Batched inference for classifiers saved by `ml.training.classifier` (calibrated probabilities)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ml.artifacts import ArtifactMeta, read_meta
from ml.errors import ArtifactError
from ml.registry import Registry
from ml.text import length_order, preprocess


@dataclass(frozen=True)
class Prediction:
    label: str
    probabilities: dict[str, float]


class Classifier(Protocol):
    name: str
    labels: tuple[str, ...]

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...


CLASSIFIERS: Registry[Classifier] = Registry(
    "classifier",
    {
        "torch-fp32": "ml.classify:create_torch",
        "onnx-int8": "ml.onnx_classify:create",
        "fake": "ml.fake:create_classifier",
    },
)


def softmax(logits: np.ndarray, temperature: float, bias: np.ndarray | None = None) -> np.ndarray:
    """softmax(logits / temperature + bias), row by row."""
    z = logits / temperature
    if bias is not None:
        z = z + bias
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Calibration:
    """How an artifact turns logits into probabilities, fitted on its validation split in training: a
    temperature, and optionally a bias per class (`class_bias`), which moves the decision back to the class
    frequencies when the loss was class-weighted."""

    temperature: float = 1.0
    class_bias: tuple[float, ...] = ()

    @classmethod
    def from_meta(cls, meta: ArtifactMeta) -> Calibration:
        """The artifact's calibration (artifacts saved before class_bias existed have a temperature only)."""
        hp = meta.hyperparameters
        bias = tuple(float(b) for b in hp.get("class_bias") or ())
        if bias and len(bias) != len(meta.labels):
            raise ArtifactError(f"class_bias has {len(bias)} values for {len(meta.labels)} labels")
        return cls(temperature=float(hp.get("temperature") or 1.0), class_bias=bias)

    def probabilities(self, logits: np.ndarray) -> np.ndarray:
        """softmax(logits / temperature + class_bias), row by row."""
        bias = np.asarray(self.class_bias, dtype=np.float32) if self.class_bias else None
        return softmax(logits, self.temperature, bias)


class TorchClassifier:
    name = "torch-fp32"

    def __init__(self, artifact_dir: Path, device: str = "cpu") -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        meta = read_meta(artifact_dir)
        self.labels = meta.labels
        self.calibration = Calibration.from_meta(meta)
        self.max_length = int(meta.hyperparameters.get("max_length") or 128)
        self.preprocess = str(meta.hyperparameters.get("text_preprocess") or "")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(artifact_dir, local_files_only=True)  # nosec B615 # loads a local directory only (HF_HUB_OFFLINE=1; packaged or trained models), never the Hub
            self.model = AutoModelForSequenceClassification.from_pretrained(  # nosec B615 # loads a local directory only (HF_HUB_OFFLINE=1; packaged or trained models), never the Hub
                artifact_dir, local_files_only=True
            )
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot load classifier from {artifact_dir}: {exc}") from None
        self.model.eval().to(device)
        self.device = device

    def logits(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        import torch

        texts = preprocess(texts, self.preprocess)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        order = length_order(texts)
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                batch = order[start : start + batch_size]
                enc = self.tokenizer(
                    [texts[i] for i in batch],
                    truncation=True,
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                ).to(self.device)
                out[batch] = self.model(**enc).logits.float().cpu().numpy()
        return out

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return self.calibration.probabilities(self.logits(texts, batch_size))


def create_torch(artifact_dir: Path, device: str = "cpu", **_: Any) -> TorchClassifier:
    return TorchClassifier(artifact_dir, device=device)


def to_predictions(labels: tuple[str, ...], probs: np.ndarray) -> list[Prediction]:
    return [
        Prediction(
            label=labels[int(row.argmax())],
            probabilities={lab: float(p) for lab, p in zip(labels, row, strict=True)},
        )
        for row in probs
    ]
