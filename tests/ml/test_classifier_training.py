from __future__ import annotations

import json
import random
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from django.conf import settings

from ml.api import ClassifierSpec, classify, run_training
from ml.classify import TorchClassifier
from ml.datasets import load_tfns, stratified_sample
from ml.errors import ArtifactError, Cancelled, InvalidInput
from ml.training.classifier import POOL_BATCHES, length_bucketed_batches, stratified_split
from ml.training.runner import SilentCallbacks
from tests.ml.recorder import Recorder

DATA = Path(settings.DATA_DIR)  # the data sets, read through DATA_DIR as the product reads them
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
        task="t",
        texts=tweets.texts,
        labels=tweets.labels,
        method="lora",
        max_steps=4,
        batch_size=8,
        class_bias=True,
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
    assert len(result.meta.hyperparameters["class_bias"]) == 3


def test_saved_probabilities_apply_the_fitted_temperature_and_class_bias(trained):
    result, _ = trained
    hp = result.meta.hyperparameters
    texts = ["Stock plunges after profit warning", "Board meets on Tuesday", "Record quarterly revenue"]
    model = TorchClassifier(result.artifact_dir)
    z = model.logits(texts) / hp["temperature"] + np.array(hp["class_bias"])
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    assert np.allclose(model.predict_proba(texts), expected, atol=1e-5)
    assert any(abs(b) > 1e-4 for b in hp["class_bias"])


def test_calibrated_probabilities_from_the_saved_model(trained):
    result, _ = trained
    preds = classify(
        result.artifact_dir,
        ["Stock plunges after profit warning", "", b"\xff", "🚀" * 5000],
        backend="torch-fp32",
    )
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
    pa = classify(a.artifact_dir, ["Revenue beat expectations"], backend="torch-fp32")[0].probabilities
    pb = classify(b.artifact_dir, ["Revenue beat expectations"], backend="torch-fp32")[0].probabilities
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


def test_a_soup_is_the_mean_of_the_ingredients_it_kept(tweets, tmp_path):
    from safetensors.torch import load_file

    base = ClassifierSpec(
        task="t", texts=tweets.texts[:40], labels=tweets.labels[:40], max_steps=2, batch_size=8
    )
    recorder = Recorder()
    recipes = ({"class_weights": True}, {"class_weights": False, "learning_rate": 1e-4})
    soup = run_training(replace(base, soup=recipes), tmp_path / "soup", recorder)
    assert [e.step for e in recorder.events] == [1, 2, 3, 4] and recorder.events[-1].total == 4
    assert [r["overrides"] for r in soup.metrics["soup"]] == list(recipes)
    ranked = max(soup.metrics["soup"], key=lambda r: r["val_macro_f1"])
    assert ranked["in_soup"]  # the best ingredient alone always starts the soup
    assert any("soup: with ingredient" in line for line in recorder.lines)
    alone = [
        run_training(replace(base, **recipe), tmp_path / f"alone{n}", SilentCallbacks())
        for n, recipe in enumerate(recipes)
    ]
    weights = [load_file(r.artifact_dir / "model.safetensors") for r in (soup, *alone)]
    key = "classifier.weight"
    assert not np.allclose(weights[1][key].numpy(), weights[2][key].numpy())
    kept = [w for w, r in zip(weights[1:], soup.metrics["soup"], strict=True) if r["in_soup"]]
    for name in (key, "bert.encoder.layer.5.output.dense.weight"):
        mean = sum(w[name] for w in kept) / len(kept)
        assert np.allclose(weights[0][name].numpy(), mean.numpy(), atol=1e-6)


def test_a_greedy_soup_keeps_an_ingredient_only_if_the_soup_validates_no_worse(monkeypatch):
    import torch

    from ml.training import classifier

    # A one-weight "model" whose validation score is highest at 2: ingredients at 1, 3, 5 and 2.5.
    model = torch.nn.Linear(1, 1, bias=False)
    states = [{"weight": torch.tensor([[w]])} for w in (1.0, 3.0, 5.0, 2.5)]
    monkeypatch.setattr(classifier, "_soup_score", lambda model, *_: -((model.weight.item() - 2.0) ** 2))
    runs: list[dict] = [{} for _ in states]
    run = classifier._Run([], [], [], [], [], None, SilentCallbacks())
    classifier._greedy_soup(model, None, states, runs, run, ClassifierSpec(task="t", texts=(), labels=()))
    # 2.5 alone (-0.25) starts; + 1 -> 1.75 (-0.0625) kept; + 3 -> 2.17 (-0.028) kept; + 5 -> 2.875 left out
    assert [r["in_soup"] for r in runs] == [True, True, False, True]
    assert [r["val_macro_f1"] for r in runs] == [-1.0, -1.0, -9.0, -0.25]
    assert model.weight.item() == pytest.approx((1.0 + 3.0 + 2.5) / 3)
    # the ingredients' own weights are untouched
    assert [float(s["weight"]) for s in states] == [1.0, 3.0, 5.0, 2.5]


@pytest.mark.parametrize(
    ("soup", "error"),
    [
        (({"texts": ()}, {}), "may only change"),
        (({"epochs": 1},), "at least two ingredients"),
        (({"epochs": 0}, {}), "epochs must be a whole number of at least 1"),
        (({"label_smoothing": 1.0}, {}), r"label_smoothing must be in \[0, 1\)"),
        (({"class_weights": "no"}, {}), "class_weights must be true or false"),
        (({"learning_rate": -1e-4}, {}), "learning_rate must be positive"),
        (({"learning_rate": "fast"}, {}), "learning_rate must be a number"),
        ((["class_weights"], {}), "a soup ingredient is a dict of overrides"),
    ],
)
def test_a_soup_may_change_the_recipe_only_and_within_its_bounds(soup, error, tmp_path):
    texts, labels = ("up", "down", "flat") * 3, ("positive", "negative", "neutral") * 3
    spec = ClassifierSpec(task="t", texts=texts, labels=labels, soup=soup)
    with pytest.raises(InvalidInput, match=error):
        run_training(spec, tmp_path / "x", SilentCallbacks())
    assert not (tmp_path / "x").exists()


def test_an_artifact_saved_before_class_bias_existed_still_classifies(trained, tmp_path):
    result, _ = trained
    old = tmp_path / "old"
    shutil.copytree(result.artifact_dir, old)
    meta = json.loads((old / "meta.json").read_text())
    del meta["hyperparameters"]["class_bias"]
    (old / "meta.json").write_text(json.dumps(meta))
    texts = ["Stock plunges after profit warning", "Record quarterly revenue"]
    z = TorchClassifier(old).logits(texts) / meta["hyperparameters"]["temperature"]
    expected = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    got = [list(p.probabilities.values()) for p in classify(old, texts, backend="torch-fp32")]
    assert np.allclose(got, expected, atol=1e-5)
