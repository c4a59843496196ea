"""Deterministic fake backends for fast tests of app logic: embedder, classifier, generator and trainers.

`ML_BACKEND=fake` makes `ml.api` choose these (a backend named in a call still wins); they are registered
under the name "fake" in the same registries as the real backends. Nothing here imports torch, transformers,
FAISS, onnxruntime or llama.cpp, and every answer is a pure function of the input, so a test may assert on it.
They are plausible, not good:

- the embedder hashes lower-cased words (and their first four letters) into 384 signed buckets and
  L2-normalises, so texts that share words are nearer than texts that do not;
- the classifier reads its labels from the artifact's meta.json and scores them by keyword cues: a small list
  of positive and negative words for sentiment-style labels, a label's own name appearing in the text for
  the others, and a tiny hash term so ties still break the same way every time;
- the generator answers with the first sentence of the last context passage in the prompt (or of the
  question, when there is none), one word per token, honouring max_new_tokens, stop strings and deadlines;
- the trainers validate the spec like the real ones, report progress, honour cancellation and write a tiny
  artifact with a valid meta.json in milliseconds.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ml.artifacts import ArtifactMeta, read_meta, sha256_texts, write_meta
from ml.errors import ArtifactError
from ml.generation import (
    FinishReason,
    GenerationChunk,
    GenerationRequest,
    GenerationResult,
    StopMatcher,
    StreamClock,
    collect,
    validate_request,
)
from ml.metrics import accuracy, macro_f1
from ml.text import preprocess
from ml.training.classifier import CLASSIFIER_KIND, ClassifierSpec, TrainResult, stratified_split
from ml.training.classifier import validate_spec as validate_classifier_spec
from ml.training.embedding import (
    EMBEDDING_KIND,
    EmbeddingSpec,
    EmbeddingTrainResult,
    retrieval_scores,
    split_by_group,
)
from ml.training.embedding import validate_spec as validate_embedding_spec
from ml.training.runner import StepTracker, TrainingCallbacks

NAME = "fake"
DIMENSION = 384  # as MiniLM, so a fake index has the real one's shape
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """Lower-cased (case-folded) runs of letters and digits."""
    return _WORD.findall(text.casefold())


POSITIVE_WORDS = frozenset(
    words(
        "good great excellent gain gains rise rises rising up beat beats profit profits growth strong record "
        "love happy surge surges soar soars bullish upgrade upgraded positive win wins boost improved"
    )
)
NEGATIVE_WORDS = frozenset(
    words(
        "bad poor loss losses down fall falls falling drop drops miss misses weak decline declines cut cuts "
        "lawsuit fraud hate terrible plunge plunges slump bearish downgrade downgraded negative lose fail"
    )
)
_POSITIVE_LABELS = frozenset({"positive", "pos", "bullish"})
_NEGATIVE_LABELS = frozenset({"negative", "neg", "bearish"})
_NEUTRAL_LABELS = frozenset({"neutral", "neu", "none", "other"})


def _hash(value: str) -> int:
    return int.from_bytes(hashlib.blake2b(value.encode("utf-8"), digest_size=8).digest(), "little")


# --- embedder -------------------------------------------------------------------------------------------
class FakeEmbedder:
    """Feature hashing of words: deterministic, L2-normalised 384-d float32 vectors."""

    name = NAME
    dimension = DIMENSION

    def __init__(self, model: str = "") -> None:
        self.model = model

    def vector(self, text: str) -> np.ndarray:
        counts = Counter(words(text))
        features: dict[str, float] = {}
        for word, n in counts.items():
            weight = 1.0 + math.log(n)  # sublinear term frequency
            features[word] = features.get(word, 0.0) + weight
            if len(word) > 4:  # a crude stem, so "refund" and "refunds" meet
                features["#" + word[:4]] = features.get("#" + word[:4], 0.0) + 0.5 * weight
        if not features:
            features = {"#empty": 1.0}  # every vector needs a direction
        out = np.zeros(self.dimension, dtype=np.float64)
        for feature, weight in features.items():
            h = _hash(feature)
            out[h % self.dimension] += weight if (h >> 63) & 1 else -weight
        norm = float(np.linalg.norm(out))
        if norm == 0:  # opposite signs cancelled out exactly
            out[_hash(text) % self.dimension] = 1.0
            norm = 1.0
        return (out / norm).astype(np.float32)

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """One L2-normalised row per text, in input order."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([self.vector(t) for t in texts])


def create_embedder(model_path: str = "", **_: object) -> FakeEmbedder:
    return FakeEmbedder(str(model_path))


# --- classifier -----------------------------------------------------------------------------------------
def label_logits(text: str, labels: tuple[str, ...]) -> np.ndarray:
    """Keyword-cue scores of `text` for each label."""
    tokens = words(text)
    present = set(tokens)
    positive = sum(t in POSITIVE_WORDS for t in tokens)
    negative = sum(t in NEGATIVE_WORDS for t in tokens)
    out = np.zeros(len(labels), dtype=np.float64)
    for j, label in enumerate(labels):
        key = label.casefold()
        if key in _POSITIVE_LABELS:
            score = 2.0 * positive
        elif key in _NEGATIVE_LABELS:
            score = 2.0 * negative
        elif key in _NEUTRAL_LABELS:
            score = 1.0 if positive == negative else 0.0
        else:
            score = 3.0 * len(set(words(label)) & present)
        out[j] = score + (_hash(f"{label}\x1f{text}") % 1000) / 2000.0  # < 0.5: breaks ties, never a cue
    return out


def probabilities(texts: list[str], labels: tuple[str, ...]) -> np.ndarray:
    """A row of class probabilities (softmax of the cue scores) per text; each row sums to 1."""
    if not texts:
        return np.zeros((0, len(labels)), dtype=np.float32)
    logits = np.stack([label_logits(t, labels) for t in texts])
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32)


class FakeClassifier:
    """Class probabilities from keyword cues, for the labels an artifact's meta.json names."""

    name = NAME

    def __init__(self, artifact_dir: Path) -> None:
        meta = read_meta(artifact_dir)
        if len(meta.labels) < 2:
            raise ArtifactError(f"{artifact_dir / 'meta.json'} names fewer than two labels")
        self.labels = meta.labels
        self.preprocess = str(meta.hyperparameters.get("text_preprocess") or "")

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return probabilities(preprocess(texts, self.preprocess), self.labels)


def create_classifier(artifact_dir: Path | str, **_: object) -> FakeClassifier:
    return FakeClassifier(Path(artifact_dir))


# --- generator ------------------------------------------------------------------------------------------
_FENCED = re.compile(r"<<<DATA([^\n]*)\n(.*?)\nDATA>>>", re.DOTALL)
_CONTEXT_LABELS = ("passage", "context", "document", "source", "article", "faq", "answer")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_TOKEN = re.compile(r"\s*\S+")
MAX_ANSWER_WORDS = 60


def _context(messages: list[dict[str, str]]) -> str:
    """The last fenced block labelled like a passage, else the last fenced block, else the last user turn."""
    blocks = [
        (label.strip().casefold(), body) for m in messages for label, body in _FENCED.findall(m["content"])
    ]
    passages = [body for label, body in blocks if any(word in label for word in _CONTEXT_LABELS)]
    if passages:
        return passages[-1]
    if blocks:
        return blocks[-1][1]
    turns = [m["content"] for m in messages if m["role"] == "user"] or [m["content"] for m in messages]
    return turns[-1]


def fake_answer(messages: list[dict[str, str]]) -> str:
    """The first sentence of the prompt's last context passage (at most 60 words)."""
    text = " ".join(_context(messages).split())
    sentence = next((s for s in _SENTENCE_END.split(text) if s.strip()), "")
    return " ".join(sentence.split()[:MAX_ANSWER_WORDS]) or "I don't know."


class FakeGenerator:
    """Implements the Generator protocol with deterministic text derived from the prompt."""

    name = NAME

    @property
    def model_id(self) -> str:
        return "fake-echo"

    def stream(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        """One chunk per word of `fake_answer`; the last chunk carries the finish reason and result."""
        req = validate_request(request)
        clock = StreamClock(req.deadline_seconds)
        pieces = _TOKEN.findall(fake_answer(req.messages))
        matcher = StopMatcher(req.stop)
        text = ""
        finish: FinishReason = "stop"
        for i, piece in enumerate(pieces):
            if clock.expired():
                finish = "deadline"
                break
            if i >= req.max_new_tokens:
                finish = "length"
                break
            clock.token()
            text += piece
            delta = matcher.feed(text)
            if delta:
                yield GenerationChunk(delta)
            if matcher.stopped:
                break
        tail = matcher.flush(text)
        if matcher.stopped:
            finish = "stop"
        prompt_tokens = sum(len(m["content"].split()) for m in req.messages)
        result = clock.result(matcher.text, finish, self.model_id, prompt_tokens)
        yield GenerationChunk(tail, finish_reason=result.finish_reason, result=result)

    def generate(self, request: GenerationRequest) -> GenerationResult:
        return collect(self.stream(request))


def create_generator(**_: object) -> FakeGenerator:
    return FakeGenerator()


# --- trainers -------------------------------------------------------------------------------------------
def _steps(callbacks: TrainingCallbacks, total: int) -> int:
    tracker = StepTracker(callbacks, total)
    tracker.check_cancel()
    for step in range(total):
        tracker.advance(loss=1.0 / (step + 2), message="fake step")
    return tracker.step


def _fake_hyperparameters(**values: Any) -> dict[str, Any]:
    return {"backend": NAME, **values}


def train_classifier(spec: ClassifierSpec, out_dir: Path, callbacks: TrainingCallbacks) -> TrainResult:
    """Validate `spec` as the real trainer does, then write a sequence-classifier artifact whose meta.json
    names the labels and records metrics of the fake classifier on a held-out split."""
    texts, labels, names = validate_classifier_spec(spec)
    callbacks.log(f"fake training on {len(texts)} examples ({len(names)} classes)")
    steps = _steps(callbacks, max(1, min(spec.epochs, spec.max_steps or spec.epochs)))
    train_idx, val_idx = stratified_split(labels, spec.val_fraction, spec.seed)
    val_true = [labels[i] for i in val_idx]
    probs = probabilities([texts[i] for i in val_idx], tuple(names))
    val_pred = [names[int(row.argmax())] for row in probs]
    metrics: dict[str, Any] = {
        "val_accuracy": accuracy(val_true, val_pred),
        "val_macro_f1": macro_f1(val_true, val_pred, names),
        "val_n": len(val_idx),
        "train_n": len(train_idx),
        "steps": steps,
        "temperature": 1.0,
        "class_bias": [],
    }
    meta = ArtifactMeta(
        task=spec.task,
        kind=CLASSIFIER_KIND,
        base_model=NAME,
        labels=tuple(names),
        data={**spec.data_sources, "examples": sha256_texts(texts, labels)},
        hyperparameters=_fake_hyperparameters(
            method=spec.method,
            epochs=spec.epochs,
            max_length=spec.max_length,
            seed=spec.seed,
            temperature=1.0,
            class_bias=[],
            text_preprocess=spec.text_preprocess,
        ),
        metrics=metrics,
    )
    write_meta(out_dir, meta)
    return TrainResult(artifact_dir=out_dir, metrics=metrics, meta=read_meta(out_dir))


def _retrieval(queries: list[str], groups: list[str], passages: Mapping[str, str]) -> dict[str, float]:
    embedder = FakeEmbedder()
    unique = list(passages)
    return retrieval_scores(
        embedder.encode(queries), groups, embedder.encode(unique), [passages[p] for p in unique]
    )


def train_embedding(spec: EmbeddingSpec, out_dir: Path, callbacks: TrainingCallbacks) -> EmbeddingTrainResult:
    """Validate `spec` as the real trainer does, then write a sentence-encoder artifact (meta.json only)
    whose metrics are the fake embedder's retrieval scores on the held-aside groups (before = after)."""
    queries, passages, groups = validate_embedding_spec(spec)
    callbacks.log(f"fake fine-tuning on {len(queries)} pairs")
    steps = _steps(callbacks, max(1, min(spec.epochs, spec.max_steps or spec.epochs)))
    train_idx, held_idx = split_by_group(groups, spec.eval_fraction, spec.seed)
    by_passage = dict(zip(passages, groups, strict=True))
    held = _retrieval([queries[i] for i in held_idx], [groups[i] for i in held_idx], by_passage)
    metrics: dict[str, Any] = {
        "before": {"heldout": held},
        "after": {"heldout": held},
        "train_pairs": len(train_idx),
        "heldout_pairs": len(held_idx),
        "steps": steps,
    }
    meta = ArtifactMeta(
        task=spec.task,
        kind=EMBEDDING_KIND,
        base_model=spec.base_model,
        data={**spec.data_sources, "pairs": sha256_texts(queries, passages)},
        hyperparameters=_fake_hyperparameters(epochs=spec.epochs, seed=spec.seed),
        metrics=metrics,
    )
    write_meta(out_dir, meta)
    return EmbeddingTrainResult(artifact_dir=out_dir, metrics=metrics, meta=read_meta(out_dir))
