"""LoRA fine-tuning of the generator on (question, answer) pairs; the adapter alone is the model version.

Each pair becomes the chat prompt the generator sees at inference (same template, same system prompt) followed
by the answer and the end-of-turn token; the loss counts only the answer tokens (the prompt is masked with
-100). A validation split carved from the pairs picks the best adapter (lowest answer loss) and stops early.
The artifact holds the adapter, the tokenizer and meta.json (kind "generator-lora", base model recorded);
`ml.generation.local` loads base + adapter from it.
"""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml.artifacts import ArtifactMeta, sha256_texts, write_meta
from ml.errors import InvalidInput
from ml.generation.local import LORA_KIND, LocalSettings, load_weights, render_chat
from ml.packaged import SMOLLM2
from ml.text import clean_texts
from ml.training.classifier import TrainResult
from ml.training.runner import StepTracker, TrainingCallbacks, seed_everything

IGNORE = -100


@dataclass(frozen=True)
class GeneratorLoraSpec:
    task: str
    questions: tuple[str, ...]
    answers: tuple[str, ...]
    base_model: str = SMOLLM2
    system_prompt: str | None = None  # None: the model template's default system turn
    epochs: int = 3
    batch_size: int = 8
    learning_rate: float = 2e-4
    warmup_ratio: float = 0.1
    weight_decay: float = 0.0
    max_length: int = 256
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    val_fraction: float = 0.1
    patience: int = 2
    seed: int = 13
    max_steps: int = 0  # 0: no cap
    device: str = "cpu"
    data_sources: dict[str, str] = field(default_factory=dict)  # name -> sha256 of the file


def _validate(spec: GeneratorLoraSpec) -> tuple[list[str], list[str]]:
    questions, answers = clean_texts(spec.questions), clean_texts(spec.answers)
    if len(questions) != len(answers):
        raise InvalidInput(f"{len(questions)} questions but {len(answers)} answers")
    keep = [i for i in range(len(questions)) if questions[i].strip() and answers[i].strip()]
    if len(keep) < 2:
        raise InvalidInput(f"need at least 2 non-empty question/answer pairs, got {len(keep)}")
    if spec.lora_r < 1 or spec.batch_size < 1 or spec.epochs < 1 or spec.max_length < 16:
        raise InvalidInput("lora_r, batch_size and epochs must be >= 1 and max_length >= 16")
    return [questions[i] for i in keep], [answers[i] for i in keep]


def encode_pair(tokenizer: Any, question: str, answer: str, system: str | None, max_length: int) -> dict:
    """Token ids and labels for one pair: the prompt is masked, the answer and its end-of-turn are learned."""
    messages = ([{"role": "system", "content": system}] if system else []) + [
        {"role": "user", "content": question}
    ]
    prompt = list(tokenizer(render_chat(tokenizer, messages), add_special_tokens=False)["input_ids"])
    target = list(tokenizer(answer, add_special_tokens=False)["input_ids"])[: max_length // 2]
    target.append(int(tokenizer.eos_token_id))
    prompt = prompt[-(max_length - len(target)) :]  # long questions lose their start, like at inference
    return {"input_ids": prompt + target, "labels": [IGNORE] * len(prompt) + target}


def _collate(examples: list[dict], pad_id: int, device: str) -> dict[str, Any]:
    import torch

    width = max(len(e["input_ids"]) for e in examples)
    ids = [e["input_ids"] + [pad_id] * (width - len(e["input_ids"])) for e in examples]
    labels = [e["labels"] + [IGNORE] * (width - len(e["labels"])) for e in examples]
    mask = [[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in examples]
    return {
        "input_ids": torch.tensor(ids, device=device),
        "attention_mask": torch.tensor(mask, device=device),
        "labels": torch.tensor(labels, device=device),
    }


def _split(n: int, fraction: float, seed: int) -> tuple[list[int], list[int]]:
    order = list(range(n))
    random.Random(seed).shuffle(order)  # nosec B311 # seeded shuffling and sampling for reproducible training, never secrets
    n_val = max(1, round(n * fraction)) if n >= 5 and fraction > 0 else 0
    return order[n_val:], sorted(order[:n_val])


def _answer_loss(model: Any, examples: list[dict], batch_size: int, pad_id: int, device: str) -> float | None:
    """Mean cross-entropy per answer token over `examples`."""
    import torch

    if not examples:
        return None
    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for i in range(0, len(examples), batch_size):
            batch = _collate(examples[i : i + batch_size], pad_id, device)
            tokens = int((batch["labels"][:, 1:] != IGNORE).sum())
            total += float(model(**batch).loss) * tokens
            count += tokens
    model.train()
    return total / max(count, 1)


def _build(spec: GeneratorLoraSpec) -> tuple[Any, Any]:
    """The tokenizer and a PEFT model on a private fp32 copy of the (cached) base."""
    from peft import LoraConfig, TaskType, get_peft_model

    tokenizer, base = load_weights(LocalSettings(model=spec.base_model, device=spec.device, dtype="float32"))
    model = copy.deepcopy(base)  # the cached base serves inference; LoRA layers go on a copy
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM,
        r=spec.lora_r,
        lora_alpha=spec.lora_alpha,
        lora_dropout=spec.lora_dropout,
        target_modules=list(spec.target_modules),
    )
    return tokenizer, get_peft_model(model, config)


def train_generator_lora(spec: GeneratorLoraSpec, out_dir: Path, callbacks: TrainingCallbacks) -> TrainResult:
    """Fine-tune a LoRA adapter on the pairs and save it to `out_dir` (adapter, tokenizer, meta.json)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    questions, answers = _validate(spec)
    seed_everything(spec.seed)
    tokenizer, model = _build(spec)
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    examples = [
        encode_pair(tokenizer, q, a, spec.system_prompt, spec.max_length)
        for q, a in zip(questions, answers, strict=True)
    ]
    train_idx, val_idx = _split(len(examples), spec.val_fraction, spec.seed)
    val = [examples[i] for i in val_idx]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / spec.batch_size)
    total = steps_per_epoch * spec.epochs
    total = min(total, spec.max_steps) if spec.max_steps else total
    scheduler = get_linear_schedule_with_warmup(optimizer, int(spec.warmup_ratio * total), total)
    tracker = StepTracker(callbacks, total)
    rng = random.Random(spec.seed)  # nosec B311 # seeded shuffling and sampling for reproducible training, never secrets
    callbacks.log(f"LoRA on {len(train_idx)} pairs, validating on {len(val)}; {total} steps")

    val_before = _answer_loss(model, val, spec.batch_size, pad_id, spec.device)
    best: dict[str, Any] = {
        "loss": val_before if val_before is not None else math.inf,
        "state": None,
        "step": 0,
    }
    losses: list[float] = []
    val_loss: float | None = None
    bad_evals = 0
    model.train()
    while tracker.step < total and bad_evals < spec.patience:
        order = train_idx[:]
        rng.shuffle(order)
        for start in range(0, len(order), spec.batch_size):
            batch = _collate(
                [examples[i] for i in order[start : start + spec.batch_size]], pad_id, spec.device
            )
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(float(loss.item()))
            tracker.advance(losses[-1])
            if tracker.step >= total:
                break
        val_loss = _answer_loss(model, val, spec.batch_size, pad_id, spec.device)
        if val_loss is None or val_loss < best["loss"]:
            best.update(loss=val_loss, state=_adapter_state(model), step=tracker.step)
            bad_evals = 0
        else:
            bad_evals += 1
        callbacks.log(f"step {tracker.step}: train loss {losses[-1]:.4f}, validation loss {val_loss}")

    if best["state"] is not None:
        model.load_state_dict(best["state"], strict=False)
    else:  # no epoch beat the untrained adapter on validation: keep the last weights, report them honestly
        best.update(loss=val_loss, step=tracker.step)
        callbacks.log("validation loss never improved on the base model; saving the last adapter")
    metrics = {
        "train_loss_first": losses[0],
        "train_loss_last": losses[-1],
        "val_loss_before": val_before,
        "val_loss": best["loss"] if val else None,
        "val_perplexity": math.exp(best["loss"]) if val and best["loss"] is not None else None,
        "best_step": best["step"],
        "steps": tracker.step,
        "train_n": len(train_idx),
        "val_n": len(val),
    }
    return _save(spec, out_dir, model, tokenizer, metrics, questions, answers)


def _adapter_state(model: Any) -> dict[str, Any]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if "lora_" in k}


def _save(
    spec: GeneratorLoraSpec,
    out_dir: Path,
    model: Any,
    tokenizer: Any,
    metrics: dict[str, Any],
    questions: list[str],
    answers: list[str],
) -> TrainResult:
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)  # a PeftModel saves the adapter only (a few MB)
    tokenizer.save_pretrained(out_dir)
    meta = ArtifactMeta(
        task=spec.task,
        kind=LORA_KIND,
        base_model=spec.base_model,
        data={**spec.data_sources, "pairs": sha256_texts(questions, answers)},
        hyperparameters={
            "method": "lora",
            "epochs": spec.epochs,
            "batch_size": spec.batch_size,
            "learning_rate": spec.learning_rate,
            "warmup_ratio": spec.warmup_ratio,
            "weight_decay": spec.weight_decay,
            "max_length": spec.max_length,
            "lora_r": spec.lora_r,
            "lora_alpha": spec.lora_alpha,
            "lora_dropout": spec.lora_dropout,
            "target_modules": list(spec.target_modules),
            "system_prompt": spec.system_prompt,
            "val_fraction": spec.val_fraction,
            "patience": spec.patience,
            "seed": spec.seed,
            "max_steps": spec.max_steps,
        },
        metrics=metrics,
    )
    write_meta(out_dir, meta)
    return TrainResult(artifact_dir=out_dir, metrics=metrics, meta=meta)
