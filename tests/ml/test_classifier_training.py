from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from ml.api import ClassifierSpec, classify, run_training
from ml.datasets import load_tfns, stratified_sample
from ml.errors import ArtifactError, Cancelled, InvalidInput
from ml.training.classifier import POOL_BATCHES, length_bucketed_batches, stratified_split
from ml.training.runner import SilentCallbacks
from tests.ml.recorder import Recorder

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tweets():
    return stratified_sample(
        load_tfns(DATA / "twitter_financial_news_sentiment" / "sent_train.csv"), 90, seed=1
    )


@pytest.fixture(scope="module")
def trained(tweets, tmp_path_factory):
    out = tmp_path_factory.mktemp("clf")
    spec = ClassifierSpec(
        task="t", texts=tweets.texts, labels=tweets.labels, method="lora", max_steps=4, batch_size=8
    )
    recorder = Recorder()
    result = run_training(spec, out, recorder)
    return result, recorder


def test_training_reports_progress_and_writes_a_complete_artifact(trained):
    result, recorder = trained
    assert [e.step for e in recorder.events] == [1, 2, 3, 4]
    assert all(e.total == 4 and e.loss is not None for e in recorder.events)
    assert recorder.events[-1].eta_seconds == 0
    for name in ("meta.json", "config.json", "model.safetensors", "tokenizer.json"):
        assert (result.artifact_dir / name).is_file()
    assert result.meta.labels == ("negative", "neutral", "positive")
    assert result.meta.hyperparameters["method"] == "lora"
    assert 0.05 < result.metrics["temperature"] < 20


def test_calibrated_probabilities_from_the_saved_model(trained):
    result, _ = trained
    preds = classify(result.artifact_dir, ["Stock plunges after profit warning", "", b"\xff", "🚀" * 5000])
    assert len(preds) == 4
    for p in preds:
        assert set(p.probabilities) == {"negative", "neutral", "positive"}
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.label == max(p.probabilities, key=p.probabilities.get)


def test_same_seed_same_model(tweets, tmp_path):
    spec = ClassifierSpec(
        task="t", texts=tweets.texts[:40], labels=tweets.labels[:40], max_steps=2, batch_size=8
    )
    a = run_training(spec, tmp_path / "a", SilentCallbacks())
    b = run_training(spec, tmp_path / "b", SilentCallbacks())
    pa = classify(a.artifact_dir, ["Revenue beat expectations"])[0].probabilities
    pb = classify(b.artifact_dir, ["Revenue beat expectations"])[0].probabilities
    assert np.allclose(list(pa.values()), list(pb.values()), atol=1e-5)


def test_cancellation_between_steps(tweets, tmp_path):
    spec = ClassifierSpec(task="t", texts=tweets.texts, labels=tweets.labels, max_steps=10, batch_size=8)
    with pytest.raises(Cancelled, match="cancelled at step 2"):
        run_training(spec, tmp_path / "c", Recorder(stop_at=2))
    assert not (tmp_path / "c" / "meta.json").exists()


def test_bad_training_input_is_refused(tmp_path):
    with pytest.raises(InvalidInput, match="2 texts but 1 labels"):
        run_training(ClassifierSpec(task="t", texts=("a", "b"), labels=("x",)), tmp_path, SilentCallbacks())
    with pytest.raises(InvalidInput, match=r"label_smoothing must be in \[0, 1\)"):
        run_training(
            ClassifierSpec(task="t", texts=("a", "b") * 2, labels=("x", "y") * 2, label_smoothing=1.0),
            tmp_path,
            SilentCallbacks(),
        )
    with pytest.raises(InvalidInput, match="unknown text preprocessing"):
        run_training(
            ClassifierSpec(task="t", texts=("a", "b"), labels=("x", "y"), text_preprocess="nope"),
            tmp_path,
            SilentCallbacks(),
        )
    with pytest.raises(InvalidInput, match="at least two classes"):
        run_training(
            ClassifierSpec(task="t", texts=("a", "b"), labels=("x", "x")), tmp_path, SilentCallbacks()
        )


def test_classify_on_a_missing_artifact_names_the_path(tmp_path):
    with pytest.raises(ArtifactError, match=str(tmp_path / "gone")):
        classify(tmp_path / "gone", ["x"])


def test_validation_split_is_stratified_and_deterministic():
    labels = ["a"] * 50 + ["b"] * 10
    train, val = stratified_split(labels, 0.2, seed=3)
    assert sorted(train + val) == list(range(60))
    assert sum(labels[i] == "b" for i in val) == 2
    assert stratified_split(labels, 0.2, seed=3) == (train, val)


def test_length_bucketed_batches_cover_every_example_once_and_pad_less():
    rng = random.Random(5)
    texts = ["w " * rng.randint(1, 60) for _ in range(2000)]
    indices = list(range(0, 2000, 2))  # the training part only
    batches = length_bucketed_batches(indices, texts, 16, random.Random(1))
    assert sorted(i for b in batches for i in b) == indices
    assert all(1 <= len(b) <= 16 for b in batches)

    def padding(bs: list[list[int]]) -> int:
        return sum(max(len(texts[i]) for i in b) * len(b) - sum(len(texts[i]) for i in b) for b in bs)

    shuffled = indices[:]
    random.Random(1).shuffle(shuffled)
    plain = [shuffled[i : i + 16] for i in range(0, len(shuffled), 16)]
    assert padding(batches) < padding(plain) / 4
    # a fresh order each epoch, the same one for the same seed
    again = length_bucketed_batches(indices, texts, 16, random.Random(1))
    assert again == batches and length_bucketed_batches(indices, texts, 16, random.Random(2)) != batches
    assert len(indices) > 16 * POOL_BATCHES  # more than one pool was cut
    # a tiny set is not sorted into look-alike batches: one batch per pool is plain shuffling
    tiny = length_bucketed_batches(list(range(72)), texts, 16, random.Random(1))
    plain_tiny = list(range(72))
    random.Random(1).shuffle(plain_tiny)
    assert sorted(tiny[0]) in [sorted(plain_tiny[i : i + 16]) for i in range(0, 72, 16)]
