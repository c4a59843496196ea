"""Fine-tune a sequence classifier on the packaged MiniLM: full or LoRA, AdamW, warm-up, early stopping,
class weights, and temperature scaling on a validation split carved from the training data."""

from __future__ import annotations

import copy
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ml.artifacts import ArtifactMeta, sha256_texts, write_meta
from ml.errors import InvalidInput
from ml.metrics import accuracy, macro_f1
from ml.packaged import MINILM, resolve_model
from ml.text import clean_texts, preprocess
from ml.training.runner import StepTracker, TrainingCallbacks, seed_everything

CLASSIFIER_KIND = "sequence-classifier"


@dataclass(frozen=True)
class ClassifierSpec:
    task: str
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    label_names: tuple[str, ...] = ()  # order of the output classes; default: sorted labels seen
    base_model: str = MINILM
    method: Literal["lora", "full"] = "full"
    epochs: int = 3
    batch_size: int = 16
    learning_rate: float | None = None  # default: 5e-5 full, 5e-4 LoRA
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 128
    val_fraction: float = 0.1
    patience: int = 2
    evals_per_epoch: int = 2
    class_weights: bool = True
    label_smoothing: float = 0.0  # share of each target spread over all classes (noisy labels)
    seed: int = 13
    max_steps: int = 0  # 0: no cap
    lora_r: int = 16
    text_preprocess: str = ""  # a name in ml.text.PREPROCESSORS, applied in training and at inference
    data_sources: dict[str, str] = field(default_factory=dict)  # name -> sha256 of the file


@dataclass(frozen=True)
class TrainResult:
    artifact_dir: Path
    metrics: dict[str, Any]
    meta: ArtifactMeta


def _validate(spec: ClassifierSpec) -> tuple[list[str], list[str], list[str]]:
    texts = preprocess(clean_texts(spec.texts), spec.text_preprocess)
    labels = [str(x) for x in spec.labels]
    if len(texts) != len(labels):
        raise InvalidInput(f"{len(texts)} texts but {len(labels)} labels")
    names = list(spec.label_names) or sorted(set(labels))
    unknown = set(labels) - set(names)
    if unknown:
        raise InvalidInput(f"labels not in label_names: {sorted(unknown)[:5]}")
    if len(names) < 2:
        raise InvalidInput("a classifier needs at least two classes")
    keep = [i for i, t in enumerate(texts) if t.strip()]
    if len(keep) < 2 * len(names):
        raise InvalidInput(f"too few non-empty examples ({len(keep)}) for {len(names)} classes")
    if not 0.0 <= spec.label_smoothing < 1.0:
        raise InvalidInput(f"label_smoothing must be in [0, 1), got {spec.label_smoothing}")
    if spec.method not in ("lora", "full"):
        raise InvalidInput(f"method must be 'lora' or 'full', got {spec.method!r}")
    return [texts[i] for i in keep], [labels[i] for i in keep], names


def stratified_split(labels: list[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices for (train, validation), taking `fraction` of each class (at least one) into validation."""
    rng = random.Random(seed)
    by_class: dict[str, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(y, []).append(i)
    train, val = [], []
    for idx in by_class.values():
        rng.shuffle(idx)
        n_val = max(1, round(len(idx) * fraction)) if len(idx) > 1 else 0
        val.extend(idx[:n_val])
        train.extend(idx[n_val:])
    rng.shuffle(train)
    return train, sorted(val)


def fit_temperature(logits: Any, targets: Any) -> float:
    """The temperature T minimising validation NLL of softmax(logits / T)."""
    import torch

    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=100)
    loss_fn = torch.nn.CrossEntropyLoss()

    def closure() -> Any:
        opt.zero_grad()
        loss = loss_fn(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.exp().item())
    return t if math.isfinite(t) and 0.05 < t < 20 else 1.0


def _build_model(spec: ClassifierSpec, names: list[str]) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = resolve_model(spec.base_model, default=MINILM)
    hf_logging.set_verbosity_error()  # "newly initialized classifier weights" is expected here
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        local_files_only=True,
    )
    if spec.method == "lora":
        from peft import LoraConfig, TaskType, get_peft_model

        config = LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=spec.lora_r,
            lora_alpha=2 * spec.lora_r,
            lora_dropout=0.1,
            target_modules=["query", "key", "value", "dense"],
        )
        model = get_peft_model(model, config)
    return tokenizer, model


def _batches(indices: list[int], size: int) -> list[list[int]]:
    return [indices[i : i + size] for i in range(0, len(indices), size)]


POOL_BATCHES = 32  # batches per length-sorted pool


def length_bucketed_batches(
    indices: list[int], texts: list[str], size: int, rng: random.Random
) -> list[list[int]]:
    """Shuffled training batches of similar-length texts: each pool of (up to) POOL_BATCHES batches of the
    shuffled order is sorted by length and cut into batches, and the batches are shuffled. Batches pad to their
    longest text, so this spends about half the compute of random batches on short finance sentences, while
    every epoch still sees every example once in a fresh order."""
    order = indices[:]
    rng.shuffle(order)
    # At most an eighth of the data per pool: on a tiny set, sorting it all by length would make batches of
    # look-alike sentences (often one label each), and a batch per pool is plain shuffling.
    pool = max(size, min(size * POOL_BATCHES, len(order) // 8 // size * size))
    batches: list[list[int]] = []
    for start in range(0, len(order), pool):
        chunk = sorted(order[start : start + pool], key=lambda i: len(texts[i]))
        batches += _batches(chunk, size)
    rng.shuffle(batches)
    return batches


def _evaluate(model: Any, tokenizer: Any, texts: list[str], targets: list[int], max_length: int) -> Any:
    """Validation logits, batched by length."""
    import torch

    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = torch.empty(len(texts), model.config.num_labels)
    model.eval()
    with torch.inference_mode():
        for batch in _batches(order, 64):
            enc = tokenizer(
                [texts[i] for i in batch],
                truncation=True,
                max_length=max_length,
                padding=True,
                return_tensors="pt",
            )
            out[batch] = model(**enc).logits.float()
    model.train()
    return out


def train_classifier(spec: ClassifierSpec, out_dir: Path, callbacks: TrainingCallbacks) -> TrainResult:
    """Train, calibrate and save a classifier to `out_dir` (weights, tokenizer, meta.json)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    texts, labels, names = _validate(spec)
    seed_everything(spec.seed)
    label_ids = [names.index(y) for y in labels]
    train_idx, val_idx = stratified_split(labels, spec.val_fraction, spec.seed)
    tokenizer, model = _build_model(spec, names)
    model.train()

    counts = Counter(label_ids[i] for i in train_idx)
    weights = None
    if spec.class_weights:
        weights = torch.tensor(
            [len(train_idx) / (len(names) * max(counts.get(c, 0), 1)) for c in range(len(names))],
            dtype=torch.float32,
        )
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=spec.label_smoothing)
    lr = spec.learning_rate or (5e-4 if spec.method == "lora" else 5e-5)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=spec.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / spec.batch_size)
    total = steps_per_epoch * spec.epochs
    if spec.max_steps:
        total = min(total, spec.max_steps)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(spec.warmup_ratio * total), total)
    eval_every = max(1, steps_per_epoch // max(1, spec.evals_per_epoch))

    tracker = StepTracker(callbacks, total)
    val_texts = [texts[i] for i in val_idx]
    val_targets = [label_ids[i] for i in val_idx]
    best: dict[str, Any] = {"f1": -1.0, "state": None, "step": 0}
    bad_evals = 0
    rng = random.Random(spec.seed)
    callbacks.log(f"training {spec.method} on {len(train_idx)} examples, validating on {len(val_idx)}")

    def evaluate_and_maybe_stop() -> bool:
        nonlocal bad_evals
        logits = _evaluate(model, tokenizer, val_texts, val_targets, spec.max_length)
        pred = [names[i] for i in logits.argmax(1).tolist()]
        f1 = macro_f1([names[i] for i in val_targets], pred, names)
        callbacks.log(f"step {tracker.step}: validation macro-F1 {f1:.4f}")
        if f1 > best["f1"]:
            best.update(f1=f1, state=copy.deepcopy(model.state_dict()), step=tracker.step)
            bad_evals = 0
        else:
            bad_evals += 1
        return bad_evals >= spec.patience * max(1, spec.evals_per_epoch)

    stop = False
    for _epoch in range(spec.epochs):
        for batch in length_bucketed_batches(train_idx, texts, spec.batch_size, rng):
            enc = tokenizer(
                [texts[i] for i in batch],
                truncation=True,
                max_length=spec.max_length,
                padding=True,
                return_tensors="pt",
            )
            logits = model(**enc).logits
            loss = loss_fn(logits, torch.tensor([label_ids[i] for i in batch]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            tracker.advance(float(loss.item()))
            at_end = tracker.step >= total
            if (tracker.step % eval_every == 0 or at_end) and evaluate_and_maybe_stop():
                callbacks.log(f"early stop at step {tracker.step}: no improvement since step {best['step']}")
                stop = True
            if stop or at_end:
                break
        if stop or tracker.step >= total:
            break

    if best["state"] is not None:
        model.load_state_dict(best["state"])
    if spec.method == "lora":
        model = model.merge_and_unload()
    val_logits = _evaluate(model, tokenizer, val_texts, val_targets, spec.max_length)
    temperature = fit_temperature(val_logits, torch.tensor(val_targets))
    val_pred = [names[i] for i in val_logits.argmax(1).tolist()]
    val_true = [names[i] for i in val_targets]
    metrics = {
        "val_accuracy": accuracy(val_true, val_pred),
        "val_macro_f1": macro_f1(val_true, val_pred, names),
        "val_n": len(val_idx),
        "train_n": len(train_idx),
        "best_step": best["step"],
        "steps": tracker.step,
        "temperature": temperature,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    meta = ArtifactMeta(
        task=spec.task,
        kind=CLASSIFIER_KIND,
        base_model=spec.base_model,
        labels=tuple(names),
        data={**spec.data_sources, "examples": sha256_texts(texts, labels)},
        hyperparameters={
            "method": spec.method,
            "epochs": spec.epochs,
            "batch_size": spec.batch_size,
            "learning_rate": lr,
            "warmup_ratio": spec.warmup_ratio,
            "weight_decay": spec.weight_decay,
            "max_length": spec.max_length,
            "val_fraction": spec.val_fraction,
            "patience": spec.patience,
            "class_weights": spec.class_weights,
            "label_smoothing": spec.label_smoothing,
            "seed": spec.seed,
            "max_steps": spec.max_steps,
            "lora_r": spec.lora_r if spec.method == "lora" else None,
            "temperature": temperature,
            "text_preprocess": spec.text_preprocess,
        },
        metrics=metrics,
    )
    write_meta(out_dir, meta)
    return TrainResult(artifact_dir=out_dir, metrics=metrics, meta=meta)
