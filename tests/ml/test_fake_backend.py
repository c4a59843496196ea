"""The deterministic fake backend (ML_BACKEND=fake): plausible enough for app logic tests to mean something."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml import api
from ml.errors import ArtifactError, Cancelled, InvalidInput
from tests.ml.recorder import Recorder

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ["torch", "transformers", "faiss", "onnxruntime", "llama_cpp", "sentence_transformers"]
SENTIMENT = ("negative", "neutral", "positive")


@pytest.fixture(autouse=True)
def fake_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ML_BACKEND", "fake")


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


# --- choice -----------------------------------------------------------------------------------------------
def test_ml_backend_fake_chooses_the_fakes_and_a_named_backend_still_wins(monkeypatch):
    monkeypatch.setenv("ML_CLASSIFIER_BACKEND", "onnx-int8")  # the fake setting beats the kind's setting
    for kind in ("embedding", "classifier", "generator", "index", "training"):
        assert api.choose_backend(kind) == "fake"
        assert api.choose_backend(kind, "auto") == "fake"
    assert api.backend_candidates("classifier", "torch-fp32") == ("torch-fp32",)
    assert api.embedder().name == api.generator().name == "fake"


def test_an_unknown_ml_backend_is_refused(monkeypatch):
    monkeypatch.setenv("ML_BACKEND", "pretend")
    with pytest.raises(InvalidInput, match="ML_BACKEND"):
        api.embed(["x"])


def test_the_fakes_load_no_heavy_library():
    code = f"""
import sys
from pathlib import Path
import ml.api as api
from ml.training.runner import SilentCallbacks
v = api.embed(["refund my card", b"bytes too"])
assert v.shape == (2, 384)
out = Path(sys.argv[1])
spec = api.ClassifierSpec(task="t", texts=("good", "bad", "fine", "great", "awful", "ok"),
                          labels=("positive", "negative", "neutral") * 2)
api.run_training(spec, out, SilentCallbacks())
assert len(api.classify(out, ["great results"])) == 1
assert api.generate(api.GenerationRequest(prompt="Hello there. Bye.")).text == "Hello there."
index = api.index_create("faq")
index.add(["a", "b"], ["lost card", "refund policy"])
assert index.search("card", 1)[0].id == "a"
api.index_load("faq", api.index_save(index).version).search("refund", 1)
heavy = [m for m in {HEAVY!r} if m in sys.modules]
assert not heavy, heavy
"""
    env = {**os.environ, "ML_BACKEND": "fake"}
    run = subprocess.run(
        [sys.executable, "-c", code, str(Path(os.environ["MODEL_STORE"]) / "clf")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]


# --- embedder ---------------------------------------------------------------------------------------------
def test_fake_embeddings_are_deterministic_normalised_and_closer_for_shared_words():
    texts = [
        "I lost my debit card",
        "my card was lost yesterday",
        "what is the weather in Paris",
        "",
        b"\xff",
    ]
    first, again = api.embed(texts), api.embed(list(texts))

    assert first.shape == (5, 384) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-6)
    assert _cos(first[0], first[1]) > _cos(first[0], first[2]) + 0.3
    assert api.embed([]).shape == (0, 384)


def test_fake_embeddings_ignore_case_and_punctuation_and_meet_on_word_stems():
    a, b, c, d = api.embed(["REFUND, please!", "refund please", "refunds", "weather"])
    assert _cos(a, b) == pytest.approx(1.0, abs=1e-6)
    assert _cos(b, c) > _cos(b, d)


# --- classifier ---------------------------------------------------------------------------------------------
def _artifact(tmp_path: Path, labels: tuple[str, ...], **hp: object) -> Path:
    """A meta.json as the real trainer writes it (the fake classifier reads nothing else)."""
    out = tmp_path / "artifact"
    out.mkdir()
    meta = {"task": "t", "kind": "sequence-classifier", "base_model": "m", "labels": list(labels)}
    (out / "meta.json").write_text(json.dumps({**meta, "hyperparameters": hp}))
    return out


def test_fake_classifier_reads_labels_from_meta_and_follows_sentiment_cues(tmp_path):
    out = _artifact(tmp_path, SENTIMENT, text_preprocess="strip-links")
    texts = ["Profits surge to a record", "Shares plunge after fraud lawsuit", "The board meets on Tuesday"]

    preds = api.classify(out, texts)

    assert [p.label for p in preds] == ["positive", "negative", "neutral"]
    for p in preds:
        assert set(p.probabilities) == set(SENTIMENT)
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
    assert api.classify(out, texts) == preds  # deterministic
    assert api.classifier(out).name == "fake"


def test_fake_classifier_uses_label_names_as_cues_for_other_tasks(tmp_path):
    out = _artifact(tmp_path, ("card_lost", "refund_request", "exchange_rate"))
    preds = api.classify(out, ["I want a refund", "my card is lost", "hello"])
    assert [p.label for p in preds[:2]] == ["refund_request", "card_lost"]
    assert preds[2].label in ("card_lost", "refund_request", "exchange_rate")
    assert sum(preds[2].probabilities.values()) == pytest.approx(1.0, abs=1e-6)


def test_fake_classifier_still_refuses_what_the_real_one_refuses(tmp_path):
    with pytest.raises(ArtifactError, match="gone"):
        api.classify(tmp_path / "gone", ["x"])
    with pytest.raises(InvalidInput, match="single string"):
        api.classify(_artifact(tmp_path, SENTIMENT), "one string")


# --- trainer ------------------------------------------------------------------------------------------------
def _spec(**kw: object) -> api.ClassifierSpec:
    texts = ("great gains", "terrible loss", "meeting today", "strong growth", "weak sales", "report out") * 3
    labels = ("positive", "negative", "neutral") * 6
    return api.ClassifierSpec(task="sentiment", texts=texts, labels=labels, label_names=SENTIMENT, **kw)


def test_fake_training_writes_a_small_valid_artifact_the_fake_classifier_loads(tmp_path):
    recorder = Recorder()
    result = api.run_training(_spec(epochs=3), tmp_path / "v1", recorder)

    meta = api.read_meta(result.artifact_dir)
    assert meta.kind == "sequence-classifier" and meta.labels == SENTIMENT
    assert meta.hyperparameters["backend"] == "fake"
    assert set(result.metrics) >= {"val_accuracy", "val_macro_f1", "val_n", "train_n"}
    assert result.metrics["val_accuracy"] == 1.0  # the cue words decide these
    assert [e.step for e in recorder.events] == [1, 2, 3]
    assert sorted(p.name for p in result.artifact_dir.iterdir()) == ["meta.json"]
    assert api.classify(result.artifact_dir, ["record profit"])[0].label == "positive"


def test_a_fake_artifact_is_served_by_the_fake_whatever_backend_is_asked(tmp_path, monkeypatch):
    result = api.run_training(_spec(epochs=1), tmp_path / "v1", Recorder())
    monkeypatch.delenv("ML_BACKEND")  # a real process reading an artifact a fake run wrote
    for backend in (None, "torch-fp32", "onnx-int8"):
        assert api.classify(result.artifact_dir, ["record profit"], backend=backend)[0].label == "positive"
    assert type(api.classifier(result.artifact_dir, backend="torch-fp32")).__module__ == "ml.fake"


def test_fake_training_honours_cancellation_and_validates_the_spec(tmp_path):
    with pytest.raises(Cancelled):
        api.train_classifier(_spec(epochs=5), tmp_path / "c", Recorder(stop_at=2))
    assert not (tmp_path / "c" / "meta.json").exists()
    with pytest.raises(InvalidInput, match="at least two classes"):
        api.train_classifier(api.ClassifierSpec(task="t", texts=("a", "b"), labels=("x", "x")), tmp_path)


def test_fake_embedder_training_records_retrieval_metrics(tmp_path):
    spec = api.EmbeddingSpec(
        task="faq",
        queries=("lost card", "card stolen", "refund time", "refund late", "fees abroad", "foreign fees"),
        passages=("freeze your card",) * 2 + ("refunds take days",) * 2 + ("fees abroad are 1%",) * 2,
        groups=("card", "card", "refund", "refund", "fees", "fees"),
        eval_fraction=0.34,
    )
    result = api.train_embedder(spec, tmp_path / "enc")
    assert api.read_meta(result.artifact_dir).kind == "sentence-encoder"
    # every held-aside query shares a word (or a stem) with its own passage and with no other
    assert result.metrics["after"]["heldout"]["hit@1"] == 1.0
    assert result.metrics["before"] == result.metrics["after"]  # a fake cannot learn
    assert result.metrics["heldout_pairs"] == 2 and result.metrics["train_pairs"] == 4


# --- generator ----------------------------------------------------------------------------------------------
def _rag_prompt() -> api.GenerationRequest:
    passages = "\n".join(
        [
            api.fence("Cards arrive in five days. They come by post.", "passage 1"),
            api.fence("You can freeze a lost card in the app. Then order a new one.", "passage 2"),
        ]
    )
    question = api.fence("I lost my card, what now?", "customer message")
    return api.GenerationRequest(
        messages=[
            {"role": "system", "content": "Answer from the passages."},
            {"role": "user", "content": f"{passages}\n\nQuestion:\n{question}"},
        ],
        max_new_tokens=64,
    )


def test_fake_generator_echoes_the_first_sentence_of_the_last_passage():
    result = api.generate(_rag_prompt())
    assert result.text == "You can freeze a lost card in the app."
    assert result.finish_reason == "stop"
    assert result.tokens == 9 and result.model == "fake-echo"
    assert api.generate(_rag_prompt()).text == result.text
    assert api.generate(api.GenerationRequest(prompt="Where is my parcel? It is late.")).text == (
        "Where is my parcel?"
    )


def test_fake_generator_honours_max_tokens_and_stop_strings():
    capped = api.generate(api.GenerationRequest(prompt="one two three four five.", max_new_tokens=3))
    assert (capped.text, capped.tokens, capped.finish_reason) == ("one two three", 3, "length")

    stopped = api.generate(api.GenerationRequest(prompt="one two three four five.", stop=("three",)))
    assert stopped.text == "one two " and stopped.finish_reason == "stop"


def test_fake_stream_chunks_concatenate_to_the_result():
    chunks = list(api.stream(_rag_prompt()))
    assert all(c.result is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.result is not None and last.finish_reason == "stop"
    assert "".join(c.text for c in chunks) == last.result.text
    assert len(chunks) > 5  # one piece per word, not one blob


def test_fake_generator_validates_requests_like_the_real_ones():
    with pytest.raises(InvalidInput, match="empty"):
        api.generate(api.GenerationRequest(prompt="   "))
    with pytest.raises(InvalidInput, match="max_new_tokens"):
        api.generate(api.GenerationRequest(prompt="hi", max_new_tokens=0))


# --- index --------------------------------------------------------------------------------------------------
DOCS = {
    "card": ("Freeze a lost card in the app and order a new card.", {"topic": "cards"}),
    "refund": ("Refunds reach your account within five days.", {"topic": "payments"}),
    "fees": ("Paying abroad costs a one percent fee.", {"topic": "payments"}),
    "pin": ("Change your card PIN at any cash machine.", {"topic": "cards"}),
}


def _fill(index: api.HybridIndex) -> None:
    index.add(list(DOCS), [t for t, _ in DOCS.values()], [m for _, m in DOCS.values()])


def test_fake_index_adds_searches_filters_and_deletes():
    index = api.index_create("help-centre")
    _fill(index)

    hits = index.search("I lost my card", k=2)
    assert hits[0].id == "card" and hits[0].metadata == {"topic": "cards"}
    assert index.search("refund", 4, filter={"topic": "payments"})[0].id == "refund"
    assert {h.id for h in index.search("card", 4, filter={"topic": "payments"})} <= {"refund", "fees"}
    assert index.delete(["card", "nope"]) == 1
    assert "card" not in [h.id for h in index.search("lost card", 4)]
    assert len(index) == 3


def test_fake_index_saves_versions_and_loads_them_back(model_store):
    index = api.index_create("faq")
    _fill(index)
    v1 = api.index_save(index)
    index.add(["late"], ["My refund is late: contact support."])
    v2 = api.index_save(index)

    assert [v.version for v in api.index_versions("faq")] == [v1.version, v2.version]
    assert v1.path.parent == model_store / "indexes" / "faq" and v2.size == 5
    assert (v1.path / "meta.json").is_file() and v1.embed_backend == "fake"

    latest, first = api.index_load("faq"), api.index_load("faq", v1.version)
    assert latest.version == v2.version and len(latest) == 5 and len(first) == 4
    assert [h.id for h in latest.search("refund late", 2)] == [h.id for h in index.search("refund late", 2)]


def test_a_loaded_index_is_shared_until_a_handle_writes(model_store):
    index = api.index_create("shared")
    _fill(index)
    version = api.index_save(index).version
    a, b = api.index_load("shared", version), api.index_load("shared", version)
    assert a._searcher is b._searcher  # one copy per process

    a.delete(["card"])
    assert len(a) == 3 and len(b) == 4 and len(api.index_load("shared", version)) == 4
    assert a.version is None  # changed since it was saved


def test_index_names_and_versions_are_checked(model_store):
    for bad in ("", "a/b", "../x", "x" * 65, "spaces here"):
        with pytest.raises(InvalidInput, match="index name"):
            api.index_create(bad)
    with pytest.raises(ArtifactError, match="no saved version"):
        api.index_load("never-saved")
    with pytest.raises(InvalidInput, match="version"):
        api.index_load("faq", "../../etc")
    with pytest.raises(ArtifactError):
        api.index_load("faq", "20000101T000000000000")
    with pytest.raises(InvalidInput, match="fusion"):
        api.index_create("ok", fusion="nope")
    assert api.index_versions("never-saved") == []
