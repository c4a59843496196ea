"""Fine-tune the sentence encoder on (query, passage) pairs with in-batch negatives, and measure retrieval on a
held-aside split before and after.

The loss is the one sentence-transformers calls MultipleNegativesRankingLoss: in a batch of n pairs, each query's
own passage is the positive and the other n-1 passages are negatives (cross-entropy over scaled cosine scores).
Pairs carry a group (for FAQ data, the thread): a batch never holds two pairs of one group, since their passages
would be false negatives, and the held-aside split takes whole groups, so no passage of an evaluated group is
ever trained on. Evaluation ranks every passage for each held-aside query and scores hit@1, hit@5 and MRR@10.
"""

from __future__ import annotations

import csv
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ml.artifacts import ArtifactMeta, sha256_file, sha256_texts, write_meta
from ml.errors import InvalidInput
from ml.metrics import hit_at_k, mrr_at_k
from ml.packaged import MINILM, resolve_model
from ml.text import clean_texts
from ml.training.runner import StepTracker, TrainingCallbacks, seed_everything

EMBEDDING_KIND = "sentence-encoder"


@dataclass(frozen=True)
class PairData:
    """(query, passage) pairs with the group each belongs to (pairs of a group share their relevant passages)."""

    name: str
    queries: tuple[str, ...]
    passages: tuple[str, ...]
    groups: tuple[str, ...]
    sha256: dict[str, str]


@dataclass(frozen=True)
class EmbeddingSpec:
    task: str
    queries: tuple[str, ...]
    passages: tuple[str, ...]
    groups: tuple[str, ...]
    base_model: str = MINILM
    epochs: int = 1
    batch_size: int = 16
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128  # training window; evaluation and the saved model keep the model's own window
    scale: float = (
        20.0  # cosine scores are multiplied by this before the softmax (sentence-transformers' default)
    )
    eval_fraction: float = 0.2
    seed: int = 13
    max_steps: int = 0  # 0: no cap
    # Evaluation-only queries (for example a test split) with their groups; never trained on.
    extra_eval_queries: tuple[str, ...] = ()
    extra_eval_groups: tuple[str, ...] = ()
    data_sources: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class EmbeddingTrainResult:
    artifact_dir: Path
    metrics: dict[str, Any]
    meta: ArtifactMeta


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        raise InvalidInput(f"data file {path} does not exist")
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def load_stackfaq_pairs(data_dir: Path) -> PairData:
    """(FAQ question, answer) pairs from StackFAQ's knowledge base, grouped by thread. Not the test queries."""
    questions = {r["thread_id"]: r["question"].strip() for r in _read_rows(data_dir / "faq_questions.csv")}
    rows = [
        r
        for r in _read_rows(data_dir / "faq_answers.csv")
        if r["answer"].strip() and r["thread_id"] in questions
    ]
    return PairData(
        name="stackfaq",
        queries=tuple(questions[r["thread_id"]] for r in rows),
        passages=tuple(r["answer"].strip() for r in rows),
        groups=tuple(r["thread_id"] for r in rows),
        sha256={name: sha256_file(data_dir / name) for name in ("faq_questions.csv", "faq_answers.csv")},
    )


def load_stackfaq_queries(data_dir: Path) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """StackFAQ's user queries (the test portion) and their thread ids: for evaluation only."""
    rows = [r for r in _read_rows(data_dir / "queries.csv") if r["query"].strip()]
    return tuple(r["query"].strip() for r in rows), tuple(r["thread_id"] for r in rows)


def split_by_group(groups: tuple[str, ...], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Pair indices for (train, held aside); whole groups go to one side, chosen with a fixed seed."""
    names = sorted(set(groups))
    random.Random(seed).shuffle(names)  # nosec B311 # seeded shuffling and sampling for reproducible training, never secrets
    n_eval = max(1, round(len(names) * fraction)) if fraction > 0 else 0
    held = set(names[:n_eval])
    train = [i for i, g in enumerate(groups) if g not in held]
    return train, [i for i, g in enumerate(groups) if g in held]


def group_batches(
    indices: list[int], groups: tuple[str, ...], size: int, rng: random.Random
) -> list[list[int]]:
    """Shuffled batches in which no two pairs share a group; batches of one pair (no negatives) are dropped."""
    pending = indices[:]
    rng.shuffle(pending)
    batches: list[list[int]] = []
    while pending:
        batch: list[int] = []
        seen: set[str] = set()
        rest: list[int] = []
        for i in pending:
            if len(batch) < size and groups[i] not in seen:
                batch.append(i)
                seen.add(groups[i])
            else:
                rest.append(i)
        if len(batch) > 1:
            batches.append(batch)
        pending = rest if len(batch) > 1 else []
    return batches


def _encode(model: Any, texts: list[str]) -> np.ndarray:
    return np.asarray(
        model.encode(
            texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        ),
        dtype=np.float32,
    )


def retrieval_scores(
    query_vectors: np.ndarray,
    query_groups: list[str],
    passage_vectors: np.ndarray,
    passage_groups: list[str],
) -> dict[str, float]:
    """hit@1, hit@5 and MRR@10 of ranking every passage for each query; relevant = the passages of its group."""
    if not len(query_groups):
        return {}
    top = np.argsort(-(query_vectors @ passage_vectors.T), axis=1)[:, :10]
    ranked = [[str(j) for j in row] for row in top.tolist()]
    by_group: dict[str, set[str]] = {}
    for j, g in enumerate(passage_groups):
        by_group.setdefault(g, set()).add(str(j))
    relevant = [by_group.get(g, set()) for g in query_groups]
    return {
        "hit@1": hit_at_k(ranked, relevant, 1),
        "hit@5": hit_at_k(ranked, relevant, 5),
        "mrr@10": mrr_at_k(ranked, relevant, 10),
        "n": len(query_groups),
    }


def validate_spec(spec: EmbeddingSpec) -> tuple[list[str], list[str], tuple[str, ...]]:
    """Cleaned queries and passages and the groups; raises InvalidInput for a spec no trainer could take."""
    queries, passages = clean_texts(spec.queries), clean_texts(spec.passages)
    if not len(queries) == len(passages) == len(spec.groups):
        raise InvalidInput(
            f"{len(queries)} queries, {len(passages)} passages and {len(spec.groups)} groups differ"
        )
    if len(spec.extra_eval_queries) != len(spec.extra_eval_groups):
        raise InvalidInput("extra_eval_queries and extra_eval_groups differ in length")
    if len(set(spec.groups)) < 3:
        raise InvalidInput(
            "need pairs from at least 3 groups (two to train with negatives, one to hold aside)"
        )
    if spec.batch_size < 2:
        raise InvalidInput("batch_size must be >= 2: the other pairs in a batch are the negatives")
    if not 0 < spec.eval_fraction < 1:
        raise InvalidInput(f"eval_fraction must be in (0, 1), got {spec.eval_fraction}")
    return queries, passages, tuple(str(g) for g in spec.groups)


class _Evaluator:
    """Scores held-aside queries (and extra evaluation queries) against the unique passages."""

    def __init__(
        self, spec: EmbeddingSpec, queries: list[str], passages: list[str], groups: tuple[str, ...]
    ) -> None:
        _, held = split_by_group(groups, spec.eval_fraction, spec.seed)
        self.held_groups = {groups[i] for i in held}
        unique = dict.fromkeys(zip(passages, groups, strict=True))
        self.passages = [p for p, _ in unique]
        self.passage_groups = [g for _, g in unique]
        held_queries = dict.fromkeys((queries[i], groups[i]) for i in held)
        self.sets: dict[str, tuple[list[str], list[str]]] = {
            "heldout": ([q for q, _ in held_queries], [g for _, g in held_queries])
        }
        extra = list(zip(clean_texts(spec.extra_eval_queries), spec.extra_eval_groups, strict=True))
        if extra:
            self.sets["extra_all"] = ([q for q, _ in extra], [g for _, g in extra])
            held_extra = [(q, g) for q, g in extra if g in self.held_groups]
            self.sets["extra_heldout_groups"] = ([q for q, _ in held_extra], [g for _, g in held_extra])

    def __call__(self, model: Any) -> dict[str, dict[str, float]]:
        passages = _encode(model, self.passages)
        return {
            name: retrieval_scores(_encode(model, qs), gs, passages, self.passage_groups)
            for name, (qs, gs) in self.sets.items()
        }


def _loss(model: Any, queries: list[str], passages: list[str], scale: float) -> Any:
    """In-batch negatives: cross-entropy of each query over all passages in the batch, its own is the target."""
    import torch

    q = model(model.preprocess(queries))["sentence_embedding"]
    p = model(model.preprocess(passages))["sentence_embedding"]
    scores = scale * torch.nn.functional.normalize(q, dim=-1) @ torch.nn.functional.normalize(p, dim=-1).T
    return torch.nn.functional.cross_entropy(scores, torch.arange(len(queries)))


def train_embedding(spec: EmbeddingSpec, out_dir: Path, callbacks: TrainingCallbacks) -> EmbeddingTrainResult:
    """Fine-tune, evaluate before/after on the held-aside groups, save a SentenceTransformer dir + meta.json."""
    queries, passages, groups = validate_spec(spec)  # before the heavy imports: bad input fails fast
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers import get_linear_schedule_with_warmup

    seed_everything(spec.seed)
    model = SentenceTransformer(
        resolve_model(spec.base_model, default=MINILM), device="cpu", local_files_only=True
    )
    window = model.max_seq_length
    evaluator = _Evaluator(spec, queries, passages, groups)
    train_idx, held_idx = split_by_group(groups, spec.eval_fraction, spec.seed)
    callbacks.log(
        f"fine-tuning on {len(train_idx)} pairs; {len(held_idx)} pairs of {len(evaluator.held_groups)} groups held aside"
    )
    model.eval()
    before = evaluator(model)

    rng = random.Random(spec.seed)  # nosec B311 # seeded shuffling and sampling for reproducible training, never secrets
    steps_per_epoch = len(group_batches(train_idx, groups, spec.batch_size, random.Random(spec.seed)))  # nosec B311 # seeded shuffling and sampling for reproducible training, never secrets
    total = steps_per_epoch * spec.epochs
    total = min(total, spec.max_steps) if spec.max_steps else total
    if total < 1:
        raise InvalidInput(
            "no training batch: need pairs from at least two groups outside the held-aside split"
        )
    optimizer = torch.optim.AdamW(model.parameters(), lr=spec.learning_rate, weight_decay=spec.weight_decay)
    scheduler = get_linear_schedule_with_warmup(optimizer, math.ceil(spec.warmup_ratio * total), total)
    tracker = StepTracker(callbacks, total)
    model.max_seq_length = spec.max_length
    model.train()
    while tracker.step < total:
        for batch in group_batches(train_idx, groups, spec.batch_size, rng):
            loss = _loss(model, [queries[i] for i in batch], [passages[i] for i in batch], spec.scale)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            tracker.advance(float(loss.item()))
            if tracker.step >= total:
                break

    model.eval()
    model.max_seq_length = window
    after = evaluator(model)
    metrics = {
        "before": before,
        "after": after,
        "train_pairs": len(train_idx),
        "heldout_pairs": len(held_idx),
    }
    metrics["steps"] = tracker.step
    callbacks.log(f"held-aside hit@1 {before['heldout']['hit@1']:.3f} -> {after['heldout']['hit@1']:.3f}")
    return _save(spec, model, out_dir, metrics, queries, passages)


def _save(
    spec: EmbeddingSpec,
    model: Any,
    out_dir: Path,
    metrics: dict[str, Any],
    queries: list[str],
    passages: list[str],
) -> EmbeddingTrainResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(out_dir), create_model_card=False)
    meta = ArtifactMeta(
        task=spec.task,
        kind=EMBEDDING_KIND,
        base_model=spec.base_model,
        data={**spec.data_sources, "pairs": sha256_texts(queries, passages)},
        hyperparameters={
            "loss": "in-batch negatives (MultipleNegativesRankingLoss)",
            "epochs": spec.epochs,
            "batch_size": spec.batch_size,
            "learning_rate": spec.learning_rate,
            "warmup_ratio": spec.warmup_ratio,
            "weight_decay": spec.weight_decay,
            "max_length": spec.max_length,
            "scale": spec.scale,
            "eval_fraction": spec.eval_fraction,
            "seed": spec.seed,
            "max_steps": spec.max_steps,
        },
        metrics=metrics,
    )
    write_meta(out_dir, meta)
    return EmbeddingTrainResult(artifact_dir=out_dir, metrics=metrics, meta=meta)
