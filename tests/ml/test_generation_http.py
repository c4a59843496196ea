"""The OpenAI-compatible HTTP generator against a local fake server (test scaffolding for the client only).

The fake speaks the streaming chat-completions protocol: server-sent `data:` events and `data: [DONE]`. Each
request takes the next behaviour from a script: stream, fail with a status, or hang.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from ml.errors import InvalidInput
from ml.generation import GenerationError, GenerationRequest
from ml.generation.openai_http import OpenAIGenerator, settings_from_env


@dataclass
class FakeServer:
    url: str
    chunks: list[str]
    script: list[str] = field(default_factory=list)  # "stream", "500", "429", "400", "hang", "stall"
    requests: list[dict[str, Any]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


def _handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            body = json.dumps({"object": "list", "data": [{"id": "fake-model-7b"}]}).encode()
            self._send(200, body, "application/json")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            payload = json.loads(self.rfile.read(length))
            fake.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **payload})
            behaviour = fake.script.pop(0) if fake.script else "stream"
            if behaviour.isdigit():
                self._send(
                    int(behaviour), b'{"error": "try later"}', "application/json", {"Retry-After": "0"}
                )
            elif behaviour == "hang":
                fake.release.wait(10)
            else:
                self._stream(payload, stall=behaviour == "stall")

        def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (extra or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _stream(self, payload: dict[str, Any], stall: bool) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i, piece in enumerate(fake.chunks):
                event = {"model": payload["model"], "choices": [{"index": 0, "delta": {"content": piece}}]}
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
                if stall and i == 0:
                    fake.release.wait(10)
                    return
            done = {
                "model": payload["model"],
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
            }
            self.wfile.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
            self.wfile.flush()

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer(url="", chunks=["Your card ", "is on ", "its way", "."])
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    httpd.daemon_threads = True
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    httpd.shutdown()
    httpd.server_close()


def _client(fake: FakeServer, **kw: Any) -> OpenAIGenerator:
    kw.setdefault("model", "served-model")
    kw.setdefault("timeout", 2.0)
    return OpenAIGenerator(settings_from_env(url=fake.url, backoff_s=0.01, **kw))


def _ask(**kw: Any) -> GenerationRequest:
    return GenerationRequest(prompt="Where is my card?", **kw)


def test_streamed_chunks_concatenate_to_the_result_and_the_request_is_openai_shaped(fake: FakeServer) -> None:
    client = _client(fake, api_key="sk-test")

    chunks = list(client.stream(_ask(max_new_tokens=50, temperature=0.3, stop=("\n\n",), seed=3)))

    text = "".join(c.text for c in chunks)
    result = chunks[-1].result
    assert result is not None
    assert text == result.text == "Your card is on its way."
    assert result.finish_reason == "stop"
    assert result.tokens == 4
    assert result.time_to_first_token_s is not None and result.time_to_first_token_s < 1.0
    assert result.model == "openai:served-model"
    sent = fake.requests[0]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["auth"] == "Bearer sk-test"
    assert sent["stream"] is True
    assert sent["max_tokens"] == 50
    assert sent["stop"] == ["\n\n"]
    assert sent["seed"] == 3
    assert sent["messages"] == [{"role": "user", "content": "Where is my card?"}]


def test_base_url_with_v1_and_no_api_key(fake: FakeServer) -> None:
    client = OpenAIGenerator(settings_from_env(url=fake.url + "/v1/", model="m", timeout=2.0))

    client.generate(_ask())

    assert fake.requests[0]["path"] == "/v1/chat/completions"
    assert fake.requests[0]["auth"] is None


def test_model_name_defaults_to_the_first_model_the_server_lists(fake: FakeServer, monkeypatch: Any) -> None:
    monkeypatch.delenv("ML_GENERATOR_MODEL", raising=False)
    client = OpenAIGenerator(settings_from_env(url=fake.url, timeout=2.0))

    result = client.generate(_ask())

    assert fake.requests[0]["model"] == "fake-model-7b"
    assert result.model == "openai:fake-model-7b"


def test_stop_string_split_across_chunks_is_cut_client_side_and_never_shown(fake: FakeServer) -> None:
    fake.chunks = ["Sure. Your card", " ships today.\nUs", "er: thanks", " a lot"]
    client = _client(fake)

    chunks = list(client.stream(_ask(stop=("\nUser:",))))

    assert "".join(c.text for c in chunks) == "Sure. Your card ships today."
    assert not any("Us" in c.text for c in chunks)
    assert chunks[-1].finish_reason == "stop"


def test_max_new_tokens_is_enforced_even_when_the_server_ignores_it(fake: FakeServer) -> None:
    fake.chunks = [f"w{i} " for i in range(20)]

    result = _client(fake).generate(_ask(max_new_tokens=3))

    assert result.text == "w0 w1 w2 "
    assert result.tokens == 3
    assert result.finish_reason == "length"


def test_500_before_the_first_token_is_retried_once_then_succeeds(fake: FakeServer) -> None:
    fake.script = ["500", "stream"]

    result = _client(fake, retries=2).generate(_ask())

    assert result.text == "Your card is on its way."
    assert len(fake.requests) == 2


def test_429_is_retried_and_persistent_5xx_gives_up_after_the_retry_budget(fake: FakeServer) -> None:
    fake.script = ["429", "503", "503", "503"]
    client = _client(fake, retries=2)

    with pytest.raises(GenerationError, match="503"):
        client.generate(_ask())

    assert len(fake.requests) == 3  # one try and two retries


def test_client_error_is_not_retried(fake: FakeServer) -> None:
    fake.script = ["400"]

    with pytest.raises(GenerationError, match="HTTP 400"):
        _client(fake, retries=3).generate(_ask())

    assert len(fake.requests) == 1


def test_a_hanging_server_times_out_without_retrying(fake: FakeServer) -> None:
    fake.script = ["hang", "hang"]
    client = _client(fake, timeout=0.5, retries=2)

    start = time.monotonic()
    with pytest.raises(GenerationError, match=r"no answer within 0\.5"):
        client.generate(_ask())

    assert time.monotonic() - start < 2.0
    assert len(fake.requests) == 1


def test_a_stream_that_stalls_after_text_fails_and_is_not_repeated(fake: FakeServer) -> None:
    fake.script = ["stall", "stream"]
    stream = _client(fake, timeout=0.5, retries=2).stream(_ask())

    first = next(stream)
    with pytest.raises(GenerationError, match="stalled"):
        list(stream)

    assert first.text == "Your card "
    assert len(fake.requests) == 1


def test_deadline_ends_a_hanging_request_with_finish_reason_deadline(fake: FakeServer) -> None:
    fake.script = ["hang"]

    start = time.monotonic()
    result = _client(fake, timeout=5.0).generate(_ask(deadline_seconds=0.3))

    assert time.monotonic() - start < 1.5
    assert result.finish_reason == "deadline"
    assert result.text == ""


def test_deadline_mid_stream_keeps_the_text_so_far(fake: FakeServer) -> None:
    fake.script = ["stall"]

    result = _client(fake, timeout=5.0).generate(_ask(deadline_seconds=0.4))

    assert result.finish_reason == "deadline"
    assert result.text == "Your card "


def test_unreachable_server_is_retried_then_reported() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = OpenAIGenerator(
        settings_from_env(url=f"http://127.0.0.1:{port}", model="m", retries=2, backoff_s=0.01)
    )

    with pytest.raises(GenerationError, match="after 3 attempts"):
        client.generate(_ask())


def test_settings_are_validated(monkeypatch: Any) -> None:
    monkeypatch.delenv("ML_GENERATOR_URL", raising=False)
    with pytest.raises(InvalidInput, match="ML_GENERATOR_URL"):
        settings_from_env()
    with pytest.raises(InvalidInput, match="http"):
        settings_from_env(url="ftp://example.org")
    monkeypatch.setenv("ML_GENERATOR_URL", "http://gpu-box:8000")
    monkeypatch.setenv("ML_GENERATOR_TIMEOUT", "soon")
    with pytest.raises(InvalidInput, match="ML_GENERATOR_TIMEOUT"):
        settings_from_env()
    monkeypatch.setenv("ML_GENERATOR_TIMEOUT", "12.5")
    monkeypatch.setenv("ML_GENERATOR_API_KEY", "k")
    settings = settings_from_env()
    assert (settings.timeout, settings.api_key, settings.connect_timeout) == (12.5, "k", 10.0)


def test_empty_prompt_is_refused_before_any_request(fake: FakeServer) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        _client(fake).generate(GenerationRequest(prompt="   "))
    assert fake.requests == []


def test_the_api_uses_the_backend_named_in_settings(
    fake: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ml.api import generate, stream

    monkeypatch.setenv("ML_GENERATOR_BACKEND", "openai")
    monkeypatch.setenv("ML_GENERATOR_URL", fake.url)
    monkeypatch.setenv("ML_GENERATOR_MODEL", "from-settings")

    result = generate(_ask())
    pieces = [c.text for c in stream(_ask())]

    assert result.text == "".join(pieces) == "Your card is on its way."
    assert result.model == "openai:from-settings"
    assert [r["model"] for r in fake.requests] == ["from-settings", "from-settings"]
