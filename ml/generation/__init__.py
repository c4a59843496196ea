"""Text generation: requests and results as frozen dataclasses, backends behind one protocol and a registry.

This module is light (no torch): the backends live in `ml.generation.local` (transformers, loaded in workers)
and `ml.generation.openai_http` (an OpenAI-compatible server). What both share lives here: request
validation, the stop-string matcher that never lets a stop string (or the start of one) reach the caller, and
the bookkeeping that turns a stream into a `GenerationResult`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from ml.errors import GenerationError as GenerationError  # re-exported: it lived here first
from ml.errors import InvalidInput
from ml.registry import Registry
from ml.text import MAX_CHARS, clean_text

FinishReason = Literal["stop", "length", "deadline"]
ROLES = ("system", "user", "assistant")
MAX_STOP_STRINGS = 8


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate. Give `messages` (chat turns) or `prompt` (one user turn), not both.

    `temperature` 0 means greedy decoding; `deadline_seconds` bounds the wall time of the whole request (the
    result then ends with finish_reason "deadline"); `seed` makes sampling repeatable.
    """

    messages: tuple[Mapping[str, str], ...] = ()
    prompt: str | None = None
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    deadline_seconds: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        # Accept lists for convenience but store tuples, so the request stays hashable-ish and immutable.
        object.__setattr__(self, "messages", tuple(self.messages))
        object.__setattr__(self, "stop", tuple(self.stop))


@dataclass(frozen=True)
class GenerationResult:
    text: str
    tokens: int
    finish_reason: FinishReason
    time_to_first_token_s: float | None
    tokens_per_s: float
    model: str
    prompt_tokens: int | None = None
    total_s: float = 0.0


@dataclass(frozen=True)
class GenerationChunk:
    """A piece of streamed text. The last chunk of every stream has `finish_reason` and `result` set."""

    text: str
    finish_reason: FinishReason | None = None
    result: GenerationResult | None = None


class Generator(Protocol):
    name: str

    @property
    def model_id(self) -> str:
        """What produced the text: the model (and adapter) name, recorded with every answer."""
        ...

    def stream(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        """Yield text deltas as they are generated; the last chunk carries the finish reason and result."""
        ...

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """Generate the whole answer."""
        ...


GENERATORS: Registry[Generator] = Registry(
    "generator",
    {
        "local": "ml.generation.local:create",
        "llama-cpp": "ml.generation.gguf:create",
        "openai": "ml.generation.openai_http:create",
        "fake": "ml.fake:create_generator",
    },
)


def collect(chunks: Iterator[GenerationChunk]) -> GenerationResult:
    """Consume a stream and return its result (the text is the concatenation of the chunks)."""
    for chunk in chunks:
        if chunk.result is not None:
            return chunk.result
    raise GenerationError("the generation stream ended without a result")


@dataclass(frozen=True)
class CleanRequest:
    """A validated request: cleaned chat turns, sane numbers."""

    messages: list[dict[str, str]]
    max_new_tokens: int
    temperature: float
    top_p: float
    stop: tuple[str, ...]
    deadline_seconds: float | None
    seed: int | None


def validate_request(request: GenerationRequest) -> CleanRequest:
    """Check and clean a request; raises InvalidInput for anything a backend could not take."""
    if not isinstance(request, GenerationRequest):
        raise InvalidInput(f"expected a GenerationRequest, got {type(request).__name__}")
    if request.messages and request.prompt is not None:
        raise InvalidInput("give messages or prompt, not both")
    messages = _clean_messages(request.messages) if request.messages else []
    if request.prompt is not None:
        messages = [{"role": "user", "content": clean_tail(request.prompt)}]
    if not any(m["content"].strip() for m in messages if m["role"] != "system"):
        raise InvalidInput("the prompt is empty")
    if isinstance(request.max_new_tokens, bool) or not isinstance(request.max_new_tokens, int):
        raise InvalidInput(f"max_new_tokens must be an integer, got {request.max_new_tokens!r}")
    if not 1 <= request.max_new_tokens <= 32_768:
        raise InvalidInput(f"max_new_tokens must be between 1 and 32768, got {request.max_new_tokens}")
    if not (math.isfinite(request.temperature) and 0.0 <= request.temperature <= 5.0):
        raise InvalidInput(f"temperature must be in [0, 5], got {request.temperature}")
    if not (math.isfinite(request.top_p) and 0.0 < request.top_p <= 1.0):
        raise InvalidInput(f"top_p must be in (0, 1], got {request.top_p}")
    deadline = request.deadline_seconds
    if deadline is not None and not (math.isfinite(deadline) and deadline > 0):
        raise InvalidInput(f"deadline_seconds must be positive, got {deadline}")
    stop = tuple(s for s in (clean_text(s) for s in request.stop) if s)
    if len(stop) > MAX_STOP_STRINGS:
        raise InvalidInput(f"at most {MAX_STOP_STRINGS} stop strings, got {len(stop)}")
    return CleanRequest(
        messages, request.max_new_tokens, float(request.temperature), float(request.top_p), stop, deadline,
        request.seed,
    )  # fmt: skip


MIN_PROMPT_TOKENS = 16


def cut_prompt(ids: list[int], context: int, max_new_tokens: int) -> list[int]:
    """Prompt token ids cut from the left so that prompt + answer fit a `context`-token window."""
    budget = context - max_new_tokens
    if budget < MIN_PROMPT_TOKENS:
        raise InvalidInput(
            f"max_new_tokens={max_new_tokens} leaves no room for a prompt in a {context}-token window"
        )
    return ids[-budget:]


def clean_tail(value: object) -> str:
    """`clean_text`, but an over-long text keeps its end: in a chat turn the question usually comes last."""
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str) and len(value) > MAX_CHARS:
        value = value[-MAX_CHARS:]
    return clean_text(value)


def _clean_messages(messages: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    out = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "content" not in message:
            raise InvalidInput(f"message {i} must be a mapping with 'role' and 'content'")
        role = message.get("role", "user")
        if role not in ROLES:
            raise InvalidInput(f"message {i} has role {role!r}; expected one of {', '.join(ROLES)}")
        out.append({"role": role, "content": clean_tail(message["content"])})
    return out


class StopMatcher:
    """Turns the growing generated text into safe deltas, cutting at the first stop string.

    Text that could still be the beginning of a stop string is held back until it is clearly not one, so a
    stop string never reaches the caller, not even in part. Trailing U+FFFD (an incomplete UTF-8 sequence
    of a byte-level tokenizer) is held back the same way until the next token completes it.
    """

    def __init__(self, stop: Sequence[str]) -> None:
        self.stop = tuple(s for s in stop if s)
        self.emitted = 0
        self.stopped = False
        self.text = ""

    def feed(self, full_text: str) -> str:
        """Give the whole text generated so far; returns the new text that is safe to show."""
        cut = self._first_stop(full_text)
        if cut is not None:
            self.stopped = True
            safe_end = cut
        else:
            safe_end = len(full_text) - self._held_back(full_text)
        safe_end = max(safe_end, self.emitted)
        delta = full_text[self.emitted : safe_end]
        self.emitted = safe_end
        self.text = full_text[:safe_end]
        return delta

    def flush(self, full_text: str) -> str:
        """At the end of generation: release what was held back (unless a stop string cut the text)."""
        if self.stopped:
            return ""
        cut = self._first_stop(full_text)
        end = cut if cut is not None else len(full_text)
        if cut is not None:
            self.stopped = True
        delta = full_text[self.emitted : max(end, self.emitted)]
        self.emitted = max(end, self.emitted)
        self.text = full_text[: self.emitted]
        return delta

    def _first_stop(self, text: str) -> int | None:
        hits = [i for i in (text.find(s) for s in self.stop) if i >= 0]
        return min(hits) if hits else None

    def _held_back(self, text: str) -> int:
        hold = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:k]):
                    hold = max(hold, k)
                    break
        stripped = len(text) - len(text.rstrip("\ufffd"))
        return max(hold, stripped)


@dataclass
class StreamClock:
    """Timing of one request: the deadline, time to first token, tokens per second."""

    deadline_seconds: float | None
    start: float = field(default_factory=time.monotonic)
    first_token_at: float | None = None
    tokens: int = 0

    def remaining(self) -> float | None:
        if self.deadline_seconds is None:
            return None
        return self.deadline_seconds - (time.monotonic() - self.start)

    def expired(self) -> bool:
        left = self.remaining()
        return left is not None and left <= 0

    def token(self, count: int = 1) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.monotonic()
        self.tokens += count

    def result(
        self, text: str, finish_reason: FinishReason, model: str, prompt_tokens: int | None
    ) -> GenerationResult:
        now = time.monotonic()
        ttft = None if self.first_token_at is None else self.first_token_at - self.start
        # Decode speed after the first token, the number a reader feels while the answer streams.
        decode_s = now - self.first_token_at if self.first_token_at is not None else 0.0
        if self.tokens > 1 and decode_s > 0:
            rate = (self.tokens - 1) / decode_s
        elif self.tokens and now > self.start:
            rate = self.tokens / (now - self.start)
        else:
            rate = 0.0
        return GenerationResult(
            text=text,
            tokens=self.tokens,
            finish_reason=finish_reason,
            time_to_first_token_s=ttft,
            tokens_per_s=rate,
            model=model,
            prompt_tokens=prompt_tokens,
            total_s=now - self.start,
        )


PREFILL_CHUNK = 512  # prompt tokens per model call; the deadline is checked between slices


def plain_transcript(messages: list[dict[str, str]]) -> str:
    """The prompt for a model without a chat template."""
    lines = [f"{m['role']}: {m['content']}" for m in messages]
    return "\n".join([*lines, "assistant:"])


def pick_token(logits: np.ndarray, temperature: float, top_p: float, rng: np.random.Generator) -> int:
    """Greedy when `temperature` is 0, else a sample from the top-p nucleus of softmax(logits / T)."""
    if temperature == 0.0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / temperature
    probs = np.exp(z - z.max())
    probs /= probs.sum()
    if top_p < 1.0:
        order = np.argsort(-probs)
        sorted_probs = probs[order]
        outside = np.cumsum(sorted_probs) - sorted_probs > top_p
        sorted_probs[outside] = 0.0
        probs = np.zeros_like(probs)
        probs[order] = sorted_probs
        probs /= probs.sum()
    return int(rng.choice(len(probs), p=probs))


class TokenSteps(Protocol):
    """One request's decoding state in an in-process backend (the KV cache lives behind it)."""

    def feed(self, ids: list[int]) -> None:
        """Run `ids` through the model, extending the cache; the next-token logits follow the last one."""
        ...

    def next_token(self) -> int:
        """Pick the next token from the current logits."""
        ...

    def is_end(self, token: int) -> bool: ...

    def text(self, generated: list[int]) -> str:
        """The answer so far, decoded."""
        ...


def _prefill(steps: TokenSteps, ids: list[int], clock: StreamClock) -> bool:
    """The prompt in slices of PREFILL_CHUNK; False when the deadline passed before it was through."""
    for start in range(0, len(ids), PREFILL_CHUNK):
        if clock.expired():
            return False
        steps.feed(ids[start : start + PREFILL_CHUNK])
    return True


def decode_stream(
    steps: TokenSteps, ids: list[int], req: CleanRequest, clock: StreamClock, model_id: str
) -> Iterator[GenerationChunk]:
    """The token loop every in-process backend shares: stop strings, max tokens and the deadline are checked
    between prompt slices and tokens; the last chunk carries the finish reason and the result."""
    matcher = StopMatcher(req.stop)
    generated: list[int] = []
    text = ""
    finish: FinishReason = "length"
    ready = _prefill(steps, ids, clock)
    while ready and len(generated) < req.max_new_tokens:
        token = steps.next_token()
        if steps.is_end(token):
            finish = "stop"
            break
        clock.token()
        generated.append(token)
        text = steps.text(generated)
        delta = matcher.feed(text)
        if delta:
            yield GenerationChunk(delta)
        if matcher.stopped or len(generated) >= req.max_new_tokens:
            break
        if clock.expired():
            finish = "deadline"
            break
        steps.feed([token])
    if not ready:
        finish = "deadline"
    tail = matcher.flush(text)
    if matcher.stopped:
        finish = "stop"
    result = clock.result(matcher.text, finish, model_id, len(ids))
    yield GenerationChunk(tail, finish_reason=finish, result=result)
