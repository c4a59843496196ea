"""Batched int8 inference on onnxruntime for classifiers saved by `ml.training.classifier`.

The artifact's merged model is exported once into the model store (`MODEL_STORE/onnx/<key>/`, keyed by the
artifact directory and its weight files) and reused; the artifact itself is never modified. Probabilities are
calibrated with the artifact's temperature and class bias, exactly as the fp32 backend does.

Classifiers quantize more of the graph than embeddings (CLASSIFIER_INT8: every MatMul and the fused attention
in int8). A class decision tolerates what a 384-d embedding's cosine gate does not: on the finance sentiment
evaluation split (2,701 sentences, a 3-class MiniLM), fp32 torch scored 0.8608 accuracy at 104 sentences/s,
the embedding settings 0.8601 at 207/s, and these settings 0.8586-0.8615 (by batch size) at 254/s, with 98 %
of labels equal to fp32's. benchmarks/bench_classify.py re-checks accuracy against fp32 every run.

A BERT classifier's last layer is exported for the [CLS] position only (the one its head reads; same fp32
logits, see `ml.onnx_export._cls_only_graph`): 1.09x the speed of the full last layer on 20-token tweets
(five interleaved rounds on a busy machine); with links stripped as well, bench_sentiment's int8 scoring
went from 377 to 636 texts/s.
Texts go through the artifact's `text_preprocess` first, as they did in training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ml.artifacts import read_meta
from ml.classify import Calibration
from ml.config import load_config
from ml.errors import ArtifactError
from ml.onnx_export import OnnxModel, QuantSettings, ensure_onnx, load_session, token_batches
from ml.text import preprocess

CLASSIFIER_INT8 = QuantSettings(
    op_types=("MatMul", "Attention"), keep_ffn_output_fp32=False, cls_only_last_layer=True
)


class OnnxClassifier:
    """A sequence classifier on onnxruntime with int8 weights (CPU)."""

    name = "onnx-int8"

    def __init__(self, artifact_dir: Path, store: Path, threads: int = 0) -> None:
        from transformers import AutoTokenizer

        meta = read_meta(artifact_dir)
        self.labels = meta.labels
        self.calibration = Calibration.from_meta(meta)
        self.max_length = int(meta.hyperparameters.get("max_length") or 128)
        self.preprocess = str(meta.hyperparameters.get("text_preprocess") or "")
        self.export: OnnxModel = ensure_onnx(
            Path(artifact_dir), variant="sequence-classifier", store=store, settings=CLASSIFIER_INT8
        )
        self.session = load_session(self.export, threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(artifact_dir, local_files_only=True)  # nosec B615 # loads a local directory only (HF_HUB_OFFLINE=1; packaged or trained models), never the Hub
        except (OSError, ValueError) as exc:
            raise ArtifactError(f"cannot load the tokenizer of {artifact_dir}: {exc}") from None

    def logits(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Raw logits in input order, computed in batches sorted by token count."""
        texts = preprocess(texts, self.preprocess)
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for batch, inputs in token_batches(
            self.tokenizer, texts, self.max_length, batch_size, self.input_names
        ):
            feed = {k: v for k, v in inputs.items() if k in self.input_names}
            out[batch] = self.session.run(None, feed)[0]
        return out

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Calibrated probabilities: softmax(logits / temperature + class bias)."""
        return self.calibration.probabilities(self.logits(texts, batch_size))


def create(artifact_dir: Path, store: Path | None = None, **_: Any) -> OnnxClassifier:
    cfg = load_config()
    return OnnxClassifier(Path(artifact_dir), store=store or cfg.model_store, threads=cfg.threads)
