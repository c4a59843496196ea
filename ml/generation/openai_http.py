"""The "openai" generator: an OpenAI-compatible chat endpoint (vLLM, Ollama, llama.cpp server) over HTTP.

Standard library only. It POSTs to `{base_url}/v1/chat/completions` with `stream: true` and reads the
server-sent events. Connection failures and 429/5xx answers are retried with exponential backoff, but only
while nothing has been streamed, so a retry never repeats text. Stop strings and max_tokens go to the server
and are enforced here too; the per-request deadline bounds connecting, waiting and reading.

Settings (environment): ML_GENERATOR_URL (required), ML_GENERATOR_API_KEY, ML_GENERATOR_MODEL (default: the
first model the server lists), ML_GENERATOR_TIMEOUT (seconds without data before giving up, default 60),
ML_GENERATOR_RETRIES (default 2).
"""

from __future__ import annotations

import http.client
import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ml.errors import InvalidInput
from ml.generation import (
    CleanRequest,
    FinishReason,
    GenerationChunk,
    GenerationError,
    GenerationRequest,
    GenerationResult,
    StopMatcher,
    StreamClock,
    collect,
    validate_request,
)

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_SERVER_STOPS = 4  # the OpenAI API takes at most four; the rest are enforced client side only
MAX_ERROR_BODY = 500


@dataclass(frozen=True)
class HttpSettings:
    base_url: str
    api_key: str | None = None
    model: str | None = None
    timeout: float = 60.0
    connect_timeout: float = 10.0
    retries: int = 2
    backoff_s: float = 0.5


def settings_from_env(
    url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    backoff_s: float = 0.5,
) -> HttpSettings:
    """Settings from arguments, falling back to the ML_GENERATOR_* environment variables."""
    env = os.environ
    base_url = url or env.get("ML_GENERATOR_URL", "")
    if not base_url:
        raise InvalidInput("the openai generator needs ML_GENERATOR_URL (for example http://localhost:8000)")
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"ML_GENERATOR_URL must be an http(s) URL, got {base_url!r}")
    timeout = timeout if timeout is not None else _number("ML_GENERATOR_TIMEOUT", 60.0)
    retries = retries if retries is not None else int(_number("ML_GENERATOR_RETRIES", 2))
    if timeout <= 0 or retries < 0:
        raise InvalidInput("ML_GENERATOR_TIMEOUT must be positive and ML_GENERATOR_RETRIES not negative")
    return HttpSettings(
        base_url=base_url,
        api_key=api_key or env.get("ML_GENERATOR_API_KEY") or None,
        model=model or env.get("ML_GENERATOR_MODEL") or None,
        timeout=timeout,
        connect_timeout=min(10.0, timeout),
        retries=retries,
        backoff_s=backoff_s,
    )


def _number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number, got {raw!r}") from None


class _DeadlinePassed(Exception):
    pass


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


@dataclass
class _Progress:
    text: str = ""
    finish: FinishReason | None = None
    model: str | None = None
    completion_tokens: int | None = None


class OpenAIGenerator:
    """A client for one OpenAI-compatible server; safe to share between threads."""

    name = "openai"

    def __init__(self, settings: HttpSettings) -> None:
        self.settings = settings
        parts = urlsplit(settings.base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        prefix = parts.path.rstrip("/")
        self._prefix = prefix if prefix.endswith("/v1") else prefix + "/v1"
        self._model = settings.model
        self._lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return f"openai:{self._model or '?'}"

    def generate(self, request: GenerationRequest) -> GenerationResult:
        """The whole answer for `request` (see `stream`)."""
        return collect(self.stream(request))

    def stream(self, request: GenerationRequest) -> Iterator[GenerationChunk]:
        """Yield text deltas as the server streams them; the last chunk has the finish reason and result."""
        req = validate_request(request)
        return self._stream(req, StreamClock(req.deadline_seconds))

    def _stream(self, req: CleanRequest, clock: StreamClock) -> Iterator[GenerationChunk]:
        matcher = StopMatcher(req.stop)
        state = _Progress()
        attempt = 0
        while True:
            try:
                body = self._body(req, clock)
                yield from self._attempt(body, req, clock, matcher, state)
                break
            except _DeadlinePassed:
                state.finish = "deadline"
                break
            except _Retryable as exc:
                wait = (
                    exc.retry_after if exc.retry_after is not None else self.settings.backoff_s * 2**attempt
                )
                left = clock.remaining()
                if state.text or attempt >= self.settings.retries:
                    raise GenerationError(
                        f"{self.settings.base_url}: {exc} (after {attempt + 1} attempts)"
                    ) from None
                if left is not None and left <= wait:
                    state.finish = "deadline"
                    break
                time.sleep(wait)
                attempt += 1
        tail = matcher.flush(state.text)
        finish: FinishReason = "stop" if matcher.stopped else (state.finish or "stop")
        if state.completion_tokens is not None and not matcher.stopped:
            clock.tokens = state.completion_tokens
        self._model = self._model or state.model
        result = clock.result(matcher.text, finish, self.model_id, None)
        yield GenerationChunk(tail, finish_reason=finish, result=result)

    def _body(self, req: CleanRequest, clock: StreamClock) -> bytes:
        payload: dict[str, Any] = {
            "model": self._model_name(clock),
            "messages": req.messages,
            "stream": True,
            "max_tokens": req.max_new_tokens,
            "temperature": req.temperature,
            "top_p": req.top_p,
        }
        if req.stop:
            payload["stop"] = list(req.stop[:MAX_SERVER_STOPS])
        if req.seed is not None:
            payload["seed"] = req.seed
        return json.dumps(payload).encode("utf-8")

    def _model_name(self, clock: StreamClock) -> str:
        """The configured model, else the first one the server lists (asked once)."""
        with self._lock:
            if self._model is None:
                conn, response = self._request("GET", "/models", None, clock)
                try:
                    listing = json.loads(response.read(1 << 20) or b"{}")
                finally:
                    conn.close()
                models = listing.get("data") if isinstance(listing, dict) else None
                if not models or not isinstance(models[0], dict) or "id" not in models[0]:
                    raise GenerationError(f"{self.settings.base_url} lists no models; set ML_GENERATOR_MODEL")
                self._model = str(models[0]["id"])
            return self._model

    def _attempt(
        self, body: bytes, req: CleanRequest, clock: StreamClock, matcher: StopMatcher, state: _Progress
    ) -> Iterator[GenerationChunk]:
        conn, response = self._request("POST", "/chat/completions", body, clock)
        try:
            content_type = response.getheader("Content-Type") or ""
            if "json" in content_type and "event-stream" not in content_type:
                events: Iterator[dict[str, Any]] = iter([_read_json(response)])  # server ignored stream
            else:
                events = self._events(conn, response, clock)
            for event in events:
                if clock.expired():
                    state.finish = "deadline"
                    return
                delta = _apply_event(event, state)
                if delta:
                    clock.token()
                    state.text += delta
                    safe = matcher.feed(state.text)
                    if safe:
                        yield GenerationChunk(safe)
                    if matcher.stopped:
                        return
                    if clock.tokens >= req.max_new_tokens:
                        state.finish = "length"
                        return
            if clock.expired() and state.finish is None:
                state.finish = "deadline"
        finally:
            conn.close()

    def _events(
        self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse, clock: StreamClock
    ) -> Iterator[dict[str, Any]]:
        """Parsed JSON of each server-sent event until `data: [DONE]` or the end of the body."""
        data: list[str] = []
        while True:
            line = self._readline(conn, response, clock)
            if line is None:  # the deadline passed while waiting
                return
            if not line:
                break
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            if text.startswith("data:"):
                value = text[5:].removeprefix(" ")
                if value.strip() == "[DONE]":
                    return
                data.append(value)
            elif not text and data:
                yield _parse_event("\n".join(data))
                data = []
        if data:
            yield _parse_event("\n".join(data))

    def _readline(
        self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse, clock: StreamClock
    ) -> bytes | None:
        if clock.expired():
            return None
        timeout = self._timeout(clock, self.settings.timeout)
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        try:
            return response.readline(1 << 20)
        except TimeoutError:
            if clock.expired():
                return None
            if clock.tokens == 0:
                raise GenerationError(f"{self.settings.base_url}: no data for {timeout:.1f} s") from None
            raise GenerationError(
                f"{self.settings.base_url}: the stream stalled for {timeout:.1f} s"
            ) from None
        except (ConnectionError, http.client.HTTPException) as exc:
            if clock.tokens == 0:
                raise _Retryable(f"connection lost: {exc!r}") from None
            raise GenerationError(f"{self.settings.base_url}: connection lost mid-stream: {exc!r}") from None

    def _request(
        self, method: str, path: str, body: bytes | None, clock: StreamClock
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        """Connect, send and read the status; raises _Retryable for what a retry may fix."""
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._host, self._port, timeout=self._timeout(clock, self.settings.connect_timeout))
        headers = {"Accept": "text/event-stream, application/json", "Content-Type": "application/json"}
        if self.settings.api_key:
            headers["Authorization"] = f"Bearer {self.settings.api_key}"
        try:
            conn.connect()
        except OSError as exc:  # refused, unreachable, or no connection within the connect timeout
            conn.close()
            if clock.expired():
                raise _DeadlinePassed from None
            raise _Retryable(f"cannot connect: {exc!r}") from None
        try:
            if conn.sock is not None:
                conn.sock.settimeout(self._timeout(clock, self.settings.timeout))
            conn.request(method, self._prefix + path, body=body, headers=headers)
            response = conn.getresponse()
        except TimeoutError:  # connected, but the server does not answer: a retry would only wait again
            conn.close()
            if clock.expired():
                raise _DeadlinePassed from None
            raise GenerationError(
                f"{self.settings.base_url}: no answer within {self.settings.timeout:.1f} s"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise _Retryable(f"connection lost: {exc!r}") from None
        if response.status != 200:
            detail = response.read(MAX_ERROR_BODY).decode("utf-8", errors="replace")
            conn.close()
            reason = f"HTTP {response.status}: {detail.strip()[:200]}"
            if response.status in RETRY_STATUSES:
                raise _Retryable(reason, _retry_after(response.getheader("Retry-After")))
            raise GenerationError(f"{self.settings.base_url}: {reason}")
        return conn, response

    @staticmethod
    def _timeout(clock: StreamClock, limit: float) -> float:
        left = clock.remaining()
        return limit if left is None else max(0.01, min(left, limit))


def _retry_after(value: str | None) -> float | None:
    try:
        return min(float(value), 30.0) if value else None
    except ValueError:
        return None


def _read_json(response: http.client.HTTPResponse) -> dict[str, Any]:
    raw = response.read(1 << 24)
    return _parse_event(raw.decode("utf-8", errors="replace"))


def _parse_event(data: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except json.JSONDecodeError:
        raise GenerationError(f"the server sent an event that is not JSON: {data[:200]!r}") from None
    if not isinstance(event, dict):
        raise GenerationError(f"the server sent an event that is not an object: {data[:200]!r}")
    if "error" in event:
        raise GenerationError(f"the server reported an error: {str(event['error'])[:300]}")
    return event


def _apply_event(event: dict[str, Any], state: _Progress) -> str:
    """Record finish reason, model and usage from one event; return its text."""
    state.model = state.model or event.get("model")
    usage = event.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        state.completion_tokens = usage["completion_tokens"]
    choices = event.get("choices") or []
    if not choices or not isinstance(choices[0], dict):
        return ""
    choice = choices[0]
    reason = choice.get("finish_reason")
    if reason:
        state.finish = "length" if reason == "length" else "stop"
    part = choice.get("delta") or choice.get("message") or {}
    content = part.get("content") if isinstance(part, dict) else None
    return content if isinstance(content, str) else ""


def create(
    url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    backoff_s: float = 0.5,
    **_: object,
) -> OpenAIGenerator:
    return OpenAIGenerator(settings_from_env(url, api_key, model, timeout, retries, backoff_s))
