"""Fine-tune a sequence classifier on the packaged MiniLM: full or LoRA, AdamW, warm-up, early stopping,
class weights, optionally a "soup" (the weight average of several fine-tunes from the same start), and
calibration (a temperature, optionally a bias per class) on a validation split carved from the training data."""

from __future__ import annotations

import copy
import dataclasses
import math
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ml.artifacts import ArtifactMeta, sha256_texts, write_meta
from ml.classify import Calibration
from ml.errors import InvalidInput
from ml.metrics import accuracy, macro_f1
from ml.packaged import MINILM, resolve_model
from ml.text import clean_texts, preprocess
from ml.training.runner import StepTracker, TrainingCallbacks, seed_everything

CLASSIFIER_KIND = "sequence-classifier"
# What may differ between the ingredients of a soup: the training recipe, never the data, split or model.
SOUP_KEYS = frozenset(
    {"class_weights", "learning_rate", "epochs", "label_smoothing", "weight_decay", "warmup_ratio"}
)


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
    class_bias: bool = False  # fit a per-class logit bias with the temperature (see fit_calibration)
    label_smoothing: float = 0.0  # share of each target spread over all classes (noisy labels)
    seed: int = 13
    max_steps: int = 0  # 0: no cap
    lora_r: int = 16
    # Model soup: one fine-tune per dict of overrides (keys in SOUP_KEYS), weights averaged; () = one run.
    soup: tuple[dict[str, Any], ...] = ()
    text_preprocess: str = ""  # a name in ml.text.PREPROCESSORS, applied in training and at inference
    data_sources: dict[str, str] = field(default_factory=dict)  # name -> sha256 of the file


@dataclass(frozen=True)
class TrainResult:
    artifact_dir: Path
    metrics: dict[str, Any]
    meta: ArtifactMeta


def validate_spec(spec: ClassifierSpec) -> tuple[list[str], list[str], list[str]]:
    """Cleaned texts, their labels and the class names; raises InvalidInput for a spec no trainer could take."""
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
    if len(spec.soup) == 1:
        raise InvalidInput("a soup needs at least two ingredients")
    for overrides in spec.soup:
        if not isinstance(overrides, dict):
            raise InvalidInput(f"a soup ingredient is a dict of overrides, got {type(overrides).__name__}")
        wrong = set(overrides) - SOUP_KEYS
        if wrong:
            raise InvalidInput(f"a soup ingredient may only change {sorted(SOUP_KEYS)}, not {sorted(wrong)}")
    for ingredient in _ingredients(spec):
        _validate_recipe(ingredient)
    if spec.method not in ("lora", "full"):
        raise InvalidInput(f"method must be 'lora' or 'full', got {spec.method!r}")
    return [texts[i] for i in keep], [labels[i] for i in keep], names


def _validate_recipe(spec: ClassifierSpec) -> None:
    """The training recipe's values (of the spec, or of each soup ingredient)."""
    if not isinstance(spec.class_weights, bool):
        raise InvalidInput(f"class_weights must be true or false, got {spec.class_weights!r}")
    if not isinstance(spec.epochs, int) or spec.epochs < 1:
        raise InvalidInput(f"epochs must be a whole number of at least 1, got {spec.epochs!r}")
    for name in ("learning_rate", "label_smoothing", "weight_decay", "warmup_ratio"):
        value = getattr(spec, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise InvalidInput(f"{name} must be a number, got {value!r}")
    if spec.learning_rate is not None and not spec.learning_rate > 0:
        raise InvalidInput(f"learning_rate must be positive, got {spec.learning_rate}")
    if not 0.0 <= spec.label_smoothing < 1.0:
        raise InvalidInput(f"label_smoothing must be in [0, 1), got {spec.label_smoothing}")
    if not 0.0 <= spec.warmup_ratio < 1.0 or spec.weight_decay < 0:
        raise InvalidInput("warmup_ratio must be in [0, 1) and weight_decay at least 0")


def stratified_split(labels: list[str], fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices for (train, validation), taking `fraction` of each class (at least one) into validation."""
    rng = random.Random(seed)  # nosec B311 # seeded shuffling and sampling for reproducible training, never secrets
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


def fit_calibration(logits: Any, targets: Any, class_bias: bool) -> Calibration:
    """The temperature T, and with `class_bias` a bias b per class (centred), minimising the validation NLL
    of softmax(logits / T + b). A class-weighted loss shifts logits towards rare classes; the bias fitted
    on unweighted validation data moves the argmax back to the data's own class frequencies. A temperature
    outside (0.05, 20) (logits that carry almost nothing, as after a few steps) is replaced by 1. No bias is
    fitted when a class has no example in `targets`: its bias would run off to minus infinity."""
    class_bias = class_bias and len(set(targets.tolist())) == logits.shape[1]
    t, b = _fit_nll(logits, targets, fit_temperature=True, fit_bias=class_bias)
    if not (math.isfinite(t) and 0.05 < t < 20):
        t, b = _fit_nll(logits, targets, fit_temperature=False, fit_bias=class_bias)
    if not all(math.isfinite(x) for x in b):
        t, b = _fit_nll(logits, targets, fit_temperature=True, fit_bias=False)
        class_bias = False
    if not (math.isfinite(t) and 0.05 < t < 20):
        t = 1.0
    return Calibration(temperature=t, class_bias=tuple(round(x, 6) for x in b) if class_bias else ())


def _fit_nll(logits: Any, targets: Any, fit_temperature: bool, fit_bias: bool) -> tuple[float, list[float]]:
    import torch

    log_t = torch.zeros(1, requires_grad=fit_temperature)
    bias = torch.zeros(logits.shape[1], requires_grad=fit_bias)
    params = [p for p in (log_t, bias) if p.requires_grad]
    if params:
        opt = torch.optim.LBFGS(params, lr=0.1, max_iter=200)
        loss_fn = torch.nn.CrossEntropyLoss()

        def closure() -> Any:
            opt.zero_grad()
            loss = loss_fn(logits / log_t.exp() + bias, targets)
            loss.backward()
            return loss

        opt.step(closure)
    return float(log_t.exp().item()), [float(x) for x in (bias - bias.mean()).detach()]


def crossfit_predictions(logits: Any, targets: Any, class_bias: bool, seed: int, folds: int = 2) -> list[int]:
    """Validation predictions of the calibrated model, each made by a calibration fitted on the other folds,
    so that the reported validation score does not grade the bias on the data it was fitted to."""
    import torch

    if not class_bias:  # a temperature alone never changes the argmax
        return [int(i) for i in logits.argmax(1).tolist()]
    rng = random.Random(seed)  # nosec B311 # seeded shuffling and sampling for reproducible training, never secrets
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(targets.tolist()):
        by_class.setdefault(int(y), []).append(i)
    fold_of = {}
    for members in by_class.values():  # stratified: each fold gets its share of every class
        rng.shuffle(members)
        fold_of.update({i: n % folds for n, i in enumerate(members)})
    pred = [0] * len(targets)
    for k in range(folds):
        held = [i for i in range(len(targets)) if fold_of[i] == k]
        rest = torch.tensor([i for i in range(len(targets)) if fold_of[i] != k])
        cal = fit_calibration(logits[rest], targets[rest], class_bias)
        probs = cal.probabilities(logits[held].numpy())
        for i, p in zip(held, probs.argmax(1).tolist(), strict=True):
            pred[i] = int(p)
    return pred


def _build_model(spec: ClassifierSpec, names: list[str]) -> tuple[Any, Any]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    path = resolve_model(spec.base_model, default=MINILM)
    hf_logging.set_verbosity_error()  # "newly initialized classifier weights" is expected here
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)  # nosec B615 # loads a local directory only (HF_HUB_OFFLINE=1; packaged or trained models), never the Hub
    model = AutoModelForSequenceClassification.from_pretrained(  # nosec B615 # loads a local directory only (HF_HUB_OFFLINE=1; packaged or trained models), never the Hub
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


@dataclass
class _Run:
    """What one fine-tune shares with the loop that drives it."""

    texts: list[str]
    label_ids: list[int]
    names: list[str]
    train_idx: list[int]
    val_idx: list[int]
    tracker: StepTracker
    callbacks: TrainingCallbacks

    @property
    def val_texts(self) -> list[str]:
        return [self.texts[i] for i in self.val_idx]

    @property
    def val_targets(self) -> list[int]:
        return [self.label_ids[i] for i in self.val_idx]


def _steps_per_epoch(spec: ClassifierSpec, n_train: int) -> int:
    return math.ceil(n_train / spec.batch_size)


def _total_steps(spec: ClassifierSpec, n_train: int) -> int:
    total = _steps_per_epoch(spec, n_train) * spec.epochs
    return min(total, spec.max_steps) if spec.max_steps else total


def _fine_tune(spec: ClassifierSpec, run: _Run, final_weights: bool) -> tuple[Any, Any, dict[str, Any]]:
    """One fine-tune from the base model (seeded, so every soup ingredient starts from the same head):
    (tokenizer, the model with LoRA merged, its validation macro-F1 and step). The model is the one at the
    best validation macro-F1 (early stopping), or with `final_weights` the last one, validated once: a soup
    averages fine-tunes that ran their whole schedule. Early stopping picked one ingredient at step 1,775 of
    3,550 (the learning rate still at half its peak) and that soup validated at 0.863 accuracy, below either
    fine-tune alone. `max_steps` caps each fine-tune, not the soup."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    seed_everything(spec.seed)
    names, label_ids, texts = run.names, run.label_ids, run.texts
    tokenizer, model = _build_model(spec, names)
    model.train()
    counts = Counter(label_ids[i] for i in run.train_idx)
    weights = None
    if spec.class_weights:
        weights = torch.tensor(
            [len(run.train_idx) / (len(names) * max(counts.get(c, 0), 1)) for c in range(len(names))],
            dtype=torch.float32,
        )
    loss_fn = torch.nn.CrossEntropyLoss(weight=weights, label_smoothing=spec.label_smoothing)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=_learning_rate(spec), weight_decay=spec.weight_decay)
    total = _total_steps(spec, len(run.train_idx))
    scheduler = get_linear_schedule_with_warmup(optimizer, int(spec.warmup_ratio * total), total)
    eval_every = max(1, _steps_per_epoch(spec, len(run.train_idx)) // max(1, spec.evals_per_epoch))
    if final_weights:
        eval_every = total + 1  # validated once, at the end
    val_texts, val_targets = run.val_texts, run.val_targets
    best: dict[str, Any] = {"f1": -1.0, "state": None, "step": 0}
    bad_evals = 0
    step = 0
    rng = random.Random(spec.seed)  # nosec B311 # seeded shuffling and sampling for reproducible training, never secrets

    def evaluate_and_maybe_stop() -> bool:
        nonlocal bad_evals
        logits = _evaluate(model, tokenizer, val_texts, val_targets, spec.max_length)
        pred = [names[i] for i in logits.argmax(1).tolist()]
        f1 = macro_f1([names[i] for i in val_targets], pred, names)
        run.callbacks.log(f"step {step}: validation macro-F1 {f1:.4f}")
        if f1 > best["f1"]:
            best.update(f1=f1, state=copy.deepcopy(model.state_dict()), step=step)
            bad_evals = 0
        else:
            bad_evals += 1
        return bad_evals >= spec.patience * max(1, spec.evals_per_epoch)

    stop = False
    for _epoch in range(spec.epochs):
        for batch in length_bucketed_batches(run.train_idx, texts, spec.batch_size, rng):
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
            step += 1
            run.tracker.advance(float(loss.item()))
            at_end = step >= total
            if (step % eval_every == 0 or at_end) and evaluate_and_maybe_stop():
                run.callbacks.log(f"early stop at step {step}: no improvement since step {best['step']}")
                stop = True
            if stop or at_end:
                break
        if stop or step >= total:
            break

    if best["state"] is not None:
        model.load_state_dict(best["state"])
    if spec.method == "lora":
        model = model.merge_and_unload()
    return tokenizer, model, {"val_macro_f1_raw": best["f1"], "best_step": best["step"], "steps": step}


def _learning_rate(spec: ClassifierSpec) -> float:
    return spec.learning_rate or (5e-4 if spec.method == "lora" else 5e-5)


def average_weights(states: list[dict[str, Any]]) -> dict[str, Any]:
    """The element-wise mean of state dicts of one architecture (integer buffers are taken from the first)."""
    out = {}
    for key, first in states[0].items():
        if first.is_floating_point():
            out[key] = (sum(s[key].float() for s in states) / len(states)).to(first.dtype)
        else:
            out[key] = first
    return out


def _soup_score(model: Any, tokenizer: Any, run: _Run, spec: ClassifierSpec) -> float:
    """The validation macro-F1 of the model as it will be calibrated (cross-fitted when a bias is fitted)."""
    import torch

    targets = torch.tensor(run.val_targets)
    logits = _evaluate(model, tokenizer, run.val_texts, run.val_targets, spec.max_length)
    pred = crossfit_predictions(logits, targets, spec.class_bias, spec.seed)
    return macro_f1([run.names[i] for i in run.val_targets], [run.names[i] for i in pred], run.names)


def _greedy_soup(
    model: Any,
    tokenizer: Any,
    states: list[dict[str, Any]],
    runs: list[dict[str, Any]],
    run: _Run,
    spec: ClassifierSpec,
) -> None:
    """Load into `model` the greedy soup of `states` (Wortsman et al. 2022): the ingredients ranked by their own
    validation score, the best one first, and each next one kept only if the mean of the weights kept so far
    and its own validates at least as well. A uniform mean of every ingredient can validate below the best
    ingredient alone; a greedy soup cannot. Each run in `runs` gets its own score and whether it was kept."""
    for state, summary in zip(states, runs, strict=True):
        model.load_state_dict(state)
        summary["val_macro_f1"] = _soup_score(model, tokenizer, run, spec)
    order = sorted(range(len(states)), key=lambda i: -runs[i]["val_macro_f1"])
    kept, best = [order[0]], runs[order[0]]["val_macro_f1"]
    run.callbacks.log(f"soup: ingredient {order[0] + 1} alone validates at macro-F1 {best:.4f}")
    for i in order[1:]:
        model.load_state_dict(average_weights([states[j] for j in [*kept, i]]))
        score = _soup_score(model, tokenizer, run, spec)
        added = score >= best
        run.callbacks.log(
            f"soup: with ingredient {i + 1}, macro-F1 {score:.4f} ({'kept' if added else 'left out'})"
        )
        if added:
            kept, best = [*kept, i], score
    for i, summary in enumerate(runs):
        summary["in_soup"] = i in kept
    model.load_state_dict(average_weights([states[j] for j in kept]))


def _ingredients(spec: ClassifierSpec) -> list[ClassifierSpec]:
    return [dataclasses.replace(spec, soup=(), **overrides) for overrides in spec.soup] or [spec]


def _recorded_recipe(spec: ClassifierSpec) -> dict[str, Any]:
    """The recipe's values for the artifact's meta; those a soup's ingredients override are null (see "soup")."""
    recipe = {
        "epochs": spec.epochs,
        "learning_rate": _learning_rate(spec),
        "warmup_ratio": spec.warmup_ratio,
        "weight_decay": spec.weight_decay,
        "class_weights": spec.class_weights,
        "label_smoothing": spec.label_smoothing,
    }
    overridden = {key for overrides in spec.soup for key in overrides}
    return {key: None if key in overridden else value for key, value in recipe.items()}


def train_classifier(spec: ClassifierSpec, out_dir: Path, callbacks: TrainingCallbacks) -> TrainResult:
    """Train, calibrate and save a classifier to `out_dir` (weights, tokenizer, meta.json). With `spec.soup`,
    one fine-tune per set of overrides, on the same data, split and seed, and the model is the mean of the
    weights of those the greedy soup keeps (a "model soup", Wortsman et al. 2022): one model's inference cost."""
    import torch

    texts, labels, names = validate_spec(spec)
    label_ids = [names.index(y) for y in labels]
    train_idx, val_idx = stratified_split(labels, spec.val_fraction, spec.seed)
    ingredients = _ingredients(spec)
    tracker = StepTracker(callbacks, sum(_total_steps(s, len(train_idx)) for s in ingredients))
    run = _Run(texts, label_ids, names, train_idx, val_idx, tracker, callbacks)
    callbacks.log(f"training {spec.method} on {len(train_idx)} examples, validating on {len(val_idx)}")
    states, runs = [], []
    for number, (ingredient, overrides) in enumerate(zip(ingredients, spec.soup or ({},), strict=True), 1):
        if spec.soup:
            callbacks.log(f"soup ingredient {number} of {len(ingredients)}: {overrides}")
        tokenizer, model, summary = _fine_tune(ingredient, run, final_weights=bool(spec.soup))
        # Copies: the last ingredient's state would otherwise be overwritten by loading a candidate soup.
        states.append({key: value.detach().clone() for key, value in model.state_dict().items()})
        runs.append({"overrides": overrides, **summary})
    val_targets = run.val_targets
    targets = torch.tensor(val_targets)
    if len(states) > 1:
        _greedy_soup(model, tokenizer, states, runs, run, spec)
    val_logits = _evaluate(model, tokenizer, run.val_texts, val_targets, spec.max_length)
    calibration = fit_calibration(val_logits, targets, spec.class_bias)
    val_true = [names[i] for i in val_targets]
    raw_pred = [names[i] for i in val_logits.argmax(1).tolist()]
    val_pred = [names[i] for i in crossfit_predictions(val_logits, targets, spec.class_bias, spec.seed)]
    metrics = {
        "val_accuracy": accuracy(val_true, val_pred),
        "val_macro_f1": macro_f1(val_true, val_pred, names),
        "val_accuracy_raw": accuracy(val_true, raw_pred),
        "val_macro_f1_raw": macro_f1(val_true, raw_pred, names),
        "val_n": len(val_idx),
        "train_n": len(train_idx),
        "best_step": None if spec.soup else runs[0]["best_step"],
        "steps": tracker.step,
        **({"soup": runs} if spec.soup else {}),
        "temperature": calibration.temperature,
        "class_bias": list(calibration.class_bias),
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
        hyperparameters=_recorded_recipe(spec)
        | {
            "method": spec.method,
            "batch_size": spec.batch_size,
            "max_length": spec.max_length,
            "val_fraction": spec.val_fraction,
            "patience": spec.patience,
            "soup": list(spec.soup),
            "class_bias_fitted": spec.class_bias,
            "seed": spec.seed,
            "max_steps": spec.max_steps,
            "lora_r": spec.lora_r if spec.method == "lora" else None,
            "temperature": calibration.temperature,
            "class_bias": list(calibration.class_bias),
            "text_preprocess": spec.text_preprocess,
        },
        metrics=metrics,
    )
    write_meta(out_dir, meta)
    return TrainResult(artifact_dir=out_dir, metrics=metrics, meta=meta)
