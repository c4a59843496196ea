"""The "llama-cpp" generator: a GGUF file run natively by llama.cpp (llama-cpp-python), weights kept quantized.

The packaged SmolLM2-135M-Instruct GGUF holds Q4_1 weights. The "local" backend dequantises them to fp32
torch tensors, and decoding then reads about 540 MB per token; llama.cpp reads the 4-bit blocks directly, and a
CPU worker decoded 3.6-3.9 times as fast as fp32 `model.generate()` in two `make bench` runs on 2 cores
(benchmarks/bench_generation.py measures both in one run, and checks this backend against the fp32 one:
next-token agreement along the fp32 answer, teacher-forced).

Settings (environment, all optional):

- ML_GENERATOR_GGUF: a GGUF file instead of the packaged one;
- ML_GENERATOR_MAX_CONTEXT: the KV-cache size in tokens (default: the model's training window);
- ML_THREADS: decoding threads (default: llama.cpp's, half the cores; prompts use every core).

LoRA adapters from `ml.training.generator_lora` are PEFT weights, not GGUF adapters: a generator with
ML_GENERATOR_ADAPTER runs on the "local" backend (`ml.api.generator` chooses it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

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


@dataclass(frozen=True)
class GgufSettings:
    path: str
    max_context: int | None = None
    threads: int | None = None


def settings_from_env(path: str | Path | None = None, max_context: int | None = None) -> GgufSettings:
    env = os.environ
    raw_path = path or env.get("ML_GENERATOR_GGUF") or None
    gguf = Path(raw_path).expanduser().resolve() if raw_path else smollm2_gguf()
    if not gguf.is_file():
        raise ArtifactError(f"ML_GENERATOR_GGUF: {gguf} is not a file")
    if max_context is None and env.get("ML_GENERATOR_MAX_CONTEXT"):
        raw = env["ML_GENERATOR_MAX_CONTEXT"]
        if not raw.isdigit() or int(raw) < 64:
            raise InvalidInput(f"ML_GENERATOR_MAX_CONTEXT must be an integer >= 64, got {raw!r}")
        max_context = int(raw)
    threads = load_config().threads or None
    return GgufSettings(path=str(gguf), max_context=max_context, threads=threads)


def load_llama(settings: GgufSettings) -> Any:
    """A llama.cpp model and context for `settings` (context 0 = the model's training window)."""
    try:
        from llama_cpp import Llama
    except ImportError as exc:
        raise InvalidInput(f"the llama-cpp backend needs llama-cpp-python ({exc})") from None
    try:
        return Llama(
            model_path=settings.path,
            n_ctx=settings.max_context or 0,
            n_threads=settings.threads,
            verbose=False,
        )
    except (ValueError, RuntimeError) as exc:
        raise ArtifactError(f"cannot load the GGUF model {settings.path}: {exc}") from None


def chat_prompt(llm: Any, messages: list[dict[str, str]]) -> str:
    """The prompt in the GGUF's chat template, rendered in a sandbox as transformers renders it."""
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = llm.metadata.get("tokenizer.chat_template")
    if not template:
        return plain_transcript(messages)
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])

    def special(token: int) -> str:
        return bytes(llm.detokenize([token], special=True)).decode("utf-8", errors="replace")

    return env.from_string(template).render(
        messages=messages,
        add_generation_prompt=True,
        bos_token=special(llm.token_bos()),
        eos_token=special(llm.token_eos()),
    )


class LlamaCppGenerator:
    """Streams from a llama.cpp context; one request at a time per loaded model (a lock guards the context)."""

    name = "llama-cpp"

    def __init__(self, settings: GgufSettings, llm: Any, lock: threading.Lock) -> None:
        self.settings = settings
        self.llm = llm
        self.context = int(llm.n_ctx())
        self.model_id = SMOLLM2 if Path(settings.path) == smollm2_gguf() else Path(settings.path).name
        self._lock = lock  # shared by every generator over this cached model

    def generate(self, request: GenerationRequest) -> GenerationResult:
        return collect(self.stream(request))

    def stream(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        req = validate_request(request)
        clock = StreamClock(req.deadline_seconds)
        ids = self.prompt_ids(req)
        return self._decode(ids, req, clock)

    def prompt_ids(self, req: CleanRequest) -> list[int]:
        """The chat-formatted prompt as token ids, cut from the left to leave room for the answer."""
        text = chat_prompt(self.llm, req.messages)
        ids = list(self.llm.tokenize(text.encode("utf-8"), add_bos=True, special=True))
        return cut_prompt(ids, self.context, req.max_new_tokens)

    def _decode(self, ids: list[int], req: CleanRequest, clock: StreamClock) -> Iterator[GenerationChunk]:
        with self._lock:  # one llama.cpp context: one request at a time
            yield from decode_stream(_LlamaSteps(self, req), ids, req, clock, self.model_id)


class _LlamaSteps:
    """One request's decoding state on the llama.cpp context (its KV cache is the context's)."""

    def __init__(self, gen: LlamaCppGenerator, req: CleanRequest) -> None:
        import llama_cpp

        self.llm, self.req = gen.llm, req
        self.rng = np.random.default_rng(req.seed)
        self._api = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(gen.llm.model)
        self._n_vocab = int(gen.llm.n_vocab())
        self.llm.reset()  # a new request starts from an empty KV cache

    def feed(self, ids: list[int]) -> None:
        self.llm.eval(ids)

    def next_token(self) -> int:
        pointer = self._api.llama_get_logits_ith(self.llm.ctx, -1)
        logits = np.ctypeslib.as_array(pointer, shape=(self._n_vocab,))
        return pick_token(logits, self.req.temperature, self.req.top_p, self.rng)

    def is_end(self, token: int) -> bool:
        return bool(self._api.llama_vocab_is_eog(self._vocab, token))

    def text(self, generated: list[int]) -> str:
        return bytes(self.llm.detokenize(generated)).decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Agreement:
    same_top_token: int
    positions: int
    min_first_logit_correlation: float

    @property
    def rate(self) -> float:
        return self.same_top_token / max(1, self.positions)


def next_token_agreement(
    reference: Any, gguf: str | Path, prompts: list[str], new_tokens: int = 24
) -> Agreement:
    """How often llama.cpp's top next token is the fp32 model's, teacher-forced along fp32's greedy answers.

    `reference` is a "local" generator (fp32 transformers on the same weights). Whole answers are a poor
    measure: one near-tie early on sends two correct models down different paths; this counts every position
    of the reference answer, and also reports how closely the first answer token's logits correlate.
    """
    import torch
    from llama_cpp import Llama

    from ml.generation import GenerationRequest

    scorer = Llama(model_path=str(gguf), n_ctx=2048, logits_all=True, verbose=False)
    same = total = 0
    correlations = []
    for prompt in prompts:
        req = validate_request(GenerationRequest(prompt=prompt, max_new_tokens=new_tokens))
        ids = reference.prompt_ids(req)
        with torch.inference_mode():
            out = reference.model.generate(
                torch.tensor([ids]),
                max_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=reference.tokenizer.eos_token_id,
            )
            full = out[0].tolist()
            expected = reference.model(torch.tensor([full])).logits[0].float().numpy()
        scorer.reset()
        scorer.eval(full)
        ours = np.asarray(scorer.scores[: len(full)])
        for pos in range(len(ids) - 1, len(full) - 1):
            same += int(ours[pos].argmax() == expected[pos].argmax())
            total += 1
        correlations.append(float(np.corrcoef(ours[len(ids) - 1], expected[len(ids) - 1])[0, 1]))
    scorer.close()
    return Agreement(same, total, min(correlations))


def create(
    device: str = "cpu", gguf: str | Path | None = None, max_context: int | None = None, **_: object
) -> LlamaCppGenerator:
    if not device.startswith("cpu"):
        raise InvalidInput(f"the llama-cpp backend runs on the CPU here, not on {device!r}; use 'local'")
    settings = settings_from_env(gguf, max_context)
    llm, lock = MODELS.get(
        ("generator", "llama-cpp", settings), lambda: (load_llama(settings), threading.Lock())
    )
    return LlamaCppGenerator(settings, llm, lock)
