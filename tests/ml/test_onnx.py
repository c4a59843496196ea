from __future__ import annotations

import csv
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from ml.embeddings.quality import QualityReport, compare, gate_path, write_gate
from ml.errors import ArtifactError
from ml.onnx_export import MODEL_FILE, ensure_onnx, load_session
from ml.packaged import minilm_path
from ml.text import clean_texts

DATA = Path(settings.DATA_DIR)  # the data sets, read through DATA_DIR as the product reads them
ROOT = Path(__file__).resolve().parents[2]


def _column(path: Path, column: str) -> list[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        return [row[column] for row in csv.DictReader(fh)]


@pytest.fixture(scope="session")
def real_sentences() -> list[str]:
    """30 real sentences of mixed length: tweets, banking questions, FAQ titles and answers."""
    rng = random.Random(7)
    tweets = _column(DATA / "twitter_financial_news_sentiment" / "sent_train.csv", "text")
    banking = _column(DATA / "banking77" / "train.csv", "text")
    answers = _column(DATA / "stackfaq" / "faq_answers.csv", "answer")
    titles = _column(DATA / "stackfaq" / "faq_questions.csv", "question")
    texts = rng.sample(tweets, 10) + rng.sample(banking, 10) + rng.sample(titles, 5) + rng.sample(answers, 5)
    rng.shuffle(texts)
    return texts


@pytest.fixture(scope="session")
def onnx_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One model store for the session, so the MiniLM export happens once for all these tests."""
    return tmp_path_factory.mktemp("onnx-store")


@pytest.fixture(scope="session")
def int8_embedder(onnx_store: Path):
    from ml.embeddings.onnx_backend import OnnxEmbedder

    return OnnxEmbedder(str(minilm_path()), store=onnx_store)


@pytest.fixture
def session_store(onnx_store: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point MODEL_STORE at the session store so ml.api reuses the export made there."""
    monkeypatch.setenv("MODEL_STORE", str(onnx_store))
    return onnx_store


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


@pytest.mark.slow
def test_int8_embeddings_stay_within_cosine_099_of_fp32(int8_embedder, minilm_embedder, real_sentences):
    int8 = int8_embedder.encode(real_sentences)
    fp32 = minilm_embedder.encode(real_sentences)
    assert int8.shape == (30, 384)
    assert int8.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(int8, axis=1), 1.0, atol=1e-5)
    assert _cosines(int8, fp32).min() >= 0.99


@pytest.mark.slow
def test_length_sorted_batches_come_back_in_input_order(int8_embedder, minilm_embedder, real_sentences):
    # Small batches over mixed lengths: sorting reorders them, and each row must still match its own text.
    int8 = int8_embedder.encode(real_sentences, batch_size=4)
    fp32 = minilm_embedder.encode(real_sentences)
    assert _cosines(int8, fp32).min() >= 0.99
    shifted = _cosines(int8, np.roll(fp32, 1, axis=0))
    assert shifted.max() < 0.99  # a row off by one would not pass


@pytest.mark.slow
def test_the_export_is_made_once_and_reused(int8_embedder, onnx_store):
    assert int8_embedder.export.created
    model_file = int8_embedder.export.model_file
    stamp = model_file.stat().st_mtime_ns

    again = ensure_onnx(minilm_path(), variant="encoder", store=onnx_store)

    assert not again.created
    assert again.model_file == model_file
    assert model_file.stat().st_mtime_ns == stamp
    meta = json.loads((again.directory / "meta.json").read_text())
    assert meta["kind"] == "onnx-encoder"
    assert meta["hyperparameters"]["quantization"]["per_channel"] is True
    assert meta["hyperparameters"]["quantization"]["weight_type"] == "QInt8"


@pytest.mark.slow
def test_awkward_inputs_embed_through_the_api(session_store, int8_embedder, minilm_embedder):
    from ml.api import embed

    texts = ["", "x" * 100_000, b"caf\xe9 \xff bytes", "混合 scripts ✨🚀 and emoji", "\x00\x07control"]
    vectors = embed(texts, backend="onnx-int8")
    assert vectors.shape == (5, 384)
    assert np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # even the degenerate inputs stay close to what fp32 gives them
    assert _cosines(vectors, minilm_embedder.encode(clean_texts(texts))).min() > 0.97
    assert embed([], backend="onnx-int8").shape == (0, 384)


@pytest.mark.slow
def test_auto_uses_int8_only_when_the_stored_gate_passed(
    session_store, int8_embedder, real_sentences, monkeypatch
):
    from ml.api import choose_backend, embedder
    from ml.embeddings.quality import check_int8_quality

    monkeypatch.setenv("ML_EMBED_BACKEND", "auto")
    model = str(minilm_path())
    assert choose_backend("embedding", model=model) == "torch-fp32"  # nothing measured yet

    report = check_int8_quality(real_sentences, embedder("onnx-int8"), embedder("torch-fp32"))
    assert report.passed, report.reason
    assert report.cosine_min >= 0.99 and report.top10_overlap >= 0.9
    write_gate(report, session_store, model)
    assert embedder().name == "onnx-int8"

    write_gate(QualityReport(0.95, 0.98, 0.8, False, "cosine min 0.95 < 0.99", 30), session_store, model)
    assert embedder().name == "torch-fp32"

    gate_path(session_store, model).write_text("{not json")
    assert choose_backend("embedding", model=model) == "torch-fp32"


def test_the_gate_fails_distorted_vectors_and_says_why():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(200, 32)).astype(np.float32)
    reference /= np.linalg.norm(reference, axis=1, keepdims=True)
    noisy = reference + rng.normal(scale=0.3, size=reference.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)

    assert compare(reference.copy(), reference).passed
    report = compare(noisy, reference)
    assert not report.passed
    assert "cosine min" in report.reason and "overlap" in report.reason
    assert report.top10_overlap < 0.9


def test_the_gate_is_off_without_a_local_model(tmp_path):
    from ml.api import choose_backend

    assert choose_backend("embedding", model=str(tmp_path / "no-such-model")) == "torch-fp32"


_ENSURE = """
import sys
from pathlib import Path
from ml.onnx_export import ensure_onnx
from ml.packaged import minilm_path
print(ensure_onnx(minilm_path(), variant="encoder", store=Path(sys.argv[1])).created)
"""


@pytest.mark.slow
def test_a_corrupt_cache_is_exported_again_by_one_process_only(int8_embedder, tmp_path):
    # Given a store whose cached export has a truncated model file (meta.json still claims it is complete)
    store = tmp_path / "store"
    broken = store / "onnx" / int8_embedder.export.directory.name
    shutil.copytree(int8_embedder.export.directory, broken)
    data = (broken / MODEL_FILE).read_bytes()
    (broken / MODEL_FILE).write_bytes(data[: len(data) // 2])

    # When two worker processes load it at the same time
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _ENSURE, str(store)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = sorted(p.communicate(timeout=600)[0].strip().splitlines()[-1] for p in procs)

    # Then exactly one re-exports, the other waits for the lock and reuses its work, and the file is whole again
    assert outputs == ["False", "True"]
    fixed = ensure_onnx(minilm_path(), variant="encoder", store=store)
    assert not fixed.created
    assert load_session(fixed) is not None


@pytest.mark.slow
def test_an_unloadable_model_file_is_an_artifact_error_naming_it(int8_embedder, tmp_path):
    store = tmp_path / "store"
    copy = store / "onnx" / int8_embedder.export.directory.name
    shutil.copytree(int8_embedder.export.directory, copy)
    (copy / MODEL_FILE).write_bytes(b"not an onnx graph")
    meta = json.loads((copy / "meta.json").read_text())
    from ml.artifacts import sha256_file

    meta["hyperparameters"]["model_sha256"] = sha256_file(copy / MODEL_FILE)  # junk that claims to be whole
    (copy / "meta.json").write_text(json.dumps(meta))

    found = ensure_onnx(minilm_path(), variant="encoder", store=store)
    assert not found.created
    with pytest.raises(ArtifactError, match=str(copy / MODEL_FILE)):
        load_session(found)


def test_a_missing_model_directory_is_an_artifact_error(tmp_path):
    with pytest.raises(ArtifactError, match="no-model"):
        ensure_onnx(tmp_path / "no-model", variant="encoder", store=tmp_path / "store")


# ---- classifier ----


@pytest.fixture(scope="session")
def tweets():
    from ml.datasets import load_tfns, stratified_sample

    return stratified_sample(
        load_tfns(DATA / "twitter_financial_news_sentiment" / "sent_train.csv"), 40, seed=2
    )


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory, tweets) -> Path:
    from ml.training.classifier import ClassifierSpec, train_classifier
    from ml.training.runner import SilentCallbacks

    out = tmp_path_factory.mktemp("tiny-clf")
    spec = ClassifierSpec(
        task="sentiment",
        texts=tweets.texts,
        labels=tweets.labels,
        max_steps=3,
        batch_size=8,
        learning_rate=3e-4,
        text_preprocess="strip-links",  # as sentiment training does
        class_bias=True,
    )
    train_classifier(spec, out, SilentCallbacks())
    return out


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["torch-fp32", "onnx-int8"])
def test_both_backends_read_text_as_training_did(session_store, tiny_classifier, backend):
    from ml.api import classifier
    from ml.artifacts import read_meta

    assert read_meta(tiny_classifier).hyperparameters["text_preprocess"] == "strip-links"
    model = classifier(tiny_classifier, backend=backend)
    with_links = ["$GM - GM loses a bull https://t.co/tdUfG5HbXy", "Profit up https://x.io/a b"]
    without = ["$GM - GM loses a bull", "Profit up b"]
    np.testing.assert_array_equal(model.logits(with_links), model.logits(without))


@pytest.mark.slow
def test_int8_classifier_agrees_with_fp32(session_store, tiny_classifier, tweets):
    from ml.api import classifier

    texts = list(tweets.texts)
    int8_model = classifier(tiny_classifier, backend="onnx-int8")
    int8 = int8_model.logits(texts, batch_size=8)
    fp32 = classifier(tiny_classifier, backend="torch-fp32").logits(texts)

    assert np.abs(int8 - fp32).max() < 0.02
    # Three training steps leave some tweets nearly tied; where fp32 has a clear winner, int8 must pick it too.
    top2 = np.sort(fp32, axis=1)[:, -2:]
    decided = top2[:, 1] - top2[:, 0] > 0.02
    assert decided.sum() >= 10
    assert (int8.argmax(axis=1) == fp32.argmax(axis=1))[decided].all()
    np.testing.assert_allclose(int8_model.predict_proba(texts).sum(axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_both_backends_apply_the_temperature_and_the_class_bias(session_store, tiny_classifier, tweets):
    from ml.api import classifier
    from ml.artifacts import read_meta

    hp = read_meta(tiny_classifier).hyperparameters
    assert len(hp["class_bias"]) == 3 and any(abs(b) > 1e-4 for b in hp["class_bias"])
    texts = list(tweets.texts[:20])
    for backend in ("torch-fp32", "onnx-int8"):
        model = classifier(tiny_classifier, backend=backend)
        z = model.logits(texts) / hp["temperature"] + np.array(hp["class_bias"])
        expected = np.exp(z - z.max(axis=1, keepdims=True))
        np.testing.assert_allclose(
            model.predict_proba(texts), expected / expected.sum(axis=1, keepdims=True), atol=1e-5
        )


@pytest.mark.slow
def test_the_cls_only_last_layer_gives_the_full_models_logits(session_store, tiny_classifier, tweets):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ml.onnx_classify import OnnxClassifier
    from ml.onnx_export import _cls_only_graph, _fits_cls_only

    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_classifier, attn_implementation="eager"
    ).eval()
    assert _fits_cls_only(model)
    enc = AutoTokenizer.from_pretrained(tiny_classifier)(
        [*tweets.texts[:15], "x"], padding=True, return_tensors="pt"
    )  # padded rows of many lengths, one of a single word
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.inference_mode():
        full = model(**enc).logits
        cut = _cls_only_graph(model, names)(*(enc[n] for n in names))
    torch.testing.assert_close(cut, full, atol=1e-5, rtol=1e-5)
    assert OnnxClassifier(tiny_classifier, store=session_store).export.meta.hyperparameters[
        "cls_only_last_layer"
    ]


@pytest.mark.slow
def test_int8_classifier_takes_awkward_inputs_through_the_api(session_store, tiny_classifier):
    from ml.api import classify

    texts = ["Stock soars to a record high", "", "x" * 100_000, b"\xff\xfe not utf-8", "🚀🚀 to the moon"]
    predictions = classify(tiny_classifier, texts, backend="onnx-int8")
    assert len(predictions) == 5
    for prediction in predictions:
        assert prediction.label in ("negative", "neutral", "positive")
        assert abs(sum(prediction.probabilities.values()) - 1.0) < 1e-5
    assert classify(tiny_classifier, [], backend="onnx-int8") == []


@pytest.mark.slow
def test_the_classifier_export_lives_in_the_store_and_leaves_the_artifact_alone(
    session_store, tiny_classifier
):
    from ml.onnx_classify import OnnxClassifier

    before = sorted(p.name for p in tiny_classifier.iterdir())
    model = OnnxClassifier(tiny_classifier, store=session_store)
    again = OnnxClassifier(tiny_classifier, store=session_store)

    assert not again.export.created
    assert again.export.model_file == model.export.model_file
    assert model.export.model_file.is_relative_to(session_store)
    assert model.export.meta.kind == "onnx-sequence-classifier"
    assert sorted(p.name for p in tiny_classifier.iterdir()) == before
