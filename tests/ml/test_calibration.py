"""Calibration of a classifier's logits: the temperature and the per-class bias fitted on validation data."""

from __future__ import annotations

import numpy as np
import pytest

from ml.artifacts import ArtifactMeta
from ml.classify import Calibration, softmax
from ml.errors import ArtifactError
from ml.metrics import accuracy
from ml.training.classifier import crossfit_predictions, fit_calibration

PRIOR = np.array([0.15, 0.7, 0.15])


def _skewed_logits(n: int, seed: int):
    """Logits of a model trained with inverse-frequency class weights: informative, but shifted by -log(prior),
    so the raw argmax over-predicts the two rare classes."""
    import torch

    rng = np.random.default_rng(seed)
    targets = rng.choice(3, size=n, p=PRIOR)
    logits = 1.5 * np.eye(3)[targets] + rng.normal(0, 1.0, size=(n, 3)) - np.log(PRIOR)
    return torch.tensor(logits, dtype=torch.float32), torch.tensor(targets)


def test_class_bias_moves_decisions_back_to_the_class_frequencies():
    logits, targets = _skewed_logits(4000, seed=1)
    cal = fit_calibration(logits, targets, class_bias=True)
    assert len(cal.class_bias) == 3
    assert sum(cal.class_bias) == pytest.approx(0.0, abs=1e-5)
    assert cal.class_bias[1] > cal.class_bias[0] + 1 and cal.class_bias[1] > cal.class_bias[2] + 1

    test_logits, test_targets = _skewed_logits(4000, seed=2)  # new data from the same distribution
    raw = test_logits.argmax(1).tolist()
    calibrated = cal.probabilities(test_logits.numpy()).argmax(1).tolist()
    truth = test_targets.tolist()
    assert accuracy(truth, calibrated) > accuracy(truth, raw) + 0.05


def test_temperature_only_keeps_every_decision():
    logits, targets = _skewed_logits(500, seed=3)
    cal = fit_calibration(logits, targets, class_bias=False)
    assert cal.class_bias == ()
    assert 0.05 < cal.temperature < 20
    assert (cal.probabilities(logits.numpy()).argmax(1) == logits.numpy().argmax(1)).all()
    assert crossfit_predictions(logits, targets, class_bias=False, seed=0) == logits.argmax(1).tolist()


def test_crossfit_predictions_are_graded_on_data_the_bias_was_not_fitted_to(monkeypatch):
    import ml.training.classifier as trainer

    logits, targets = _skewed_logits(1000, seed=4)
    fitted_on: list[set[int]] = []
    real_fit = trainer.fit_calibration

    def recording_fit(fit_logits, fit_targets, class_bias):
        fitted_on.append(set(_rows_of(fit_logits, logits)))
        return real_fit(fit_logits, fit_targets, class_bias)

    monkeypatch.setattr(trainer, "fit_calibration", recording_fit)
    crossfit = trainer.crossfit_predictions(logits, targets, class_bias=True, seed=0)

    assert len(fitted_on) == 2 and not fitted_on[0] & fitted_on[1]  # two disjoint halves
    assert fitted_on[0] | fitted_on[1] == set(range(1000))
    for rows in fitted_on:  # each half stratified: about half of every class
        share = np.bincount(targets[sorted(rows)].numpy(), minlength=3) / np.bincount(targets.numpy())
        assert np.allclose(share, 0.5, atol=0.01)
    for k, rows in enumerate(fitted_on):  # a row's prediction comes from the half it is not in
        other = real_fit(logits[sorted(rows)], targets[sorted(rows)], True)
        held = sorted(fitted_on[1 - k])
        assert [crossfit[i] for i in held] == other.probabilities(logits[held].numpy()).argmax(1).tolist()
    assert accuracy(targets.tolist(), crossfit) > accuracy(targets.tolist(), logits.argmax(1).tolist())


def _rows_of(part, whole) -> list[int]:
    index = {tuple(row.tolist()): i for i, row in enumerate(whole)}
    return [index[tuple(row.tolist())] for row in part]


def test_no_bias_is_fitted_when_a_class_has_no_example():
    logits, targets = _skewed_logits(300, seed=5)
    keep = targets != 2
    cal = fit_calibration(logits[keep], targets[keep], class_bias=True)
    assert cal.class_bias == ()
    assert 0.05 < cal.temperature < 20


def test_probabilities_are_softmax_of_scaled_logits_plus_bias():
    logits = np.array([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0]], dtype=np.float32)
    cal = Calibration(temperature=2.0, class_bias=(-0.5, 1.0, -0.5))
    expected = np.exp(logits / 2.0 + np.array([-0.5, 1.0, -0.5]))
    expected /= expected.sum(axis=1, keepdims=True)
    assert np.allclose(cal.probabilities(logits), expected, atol=1e-6)
    assert np.allclose(softmax(logits, 2.0), Calibration(2.0).probabilities(logits))


def _meta(**hyperparameters):
    return ArtifactMeta(task="t", kind="sequence-classifier", base_model="m", labels=("a", "b"),
                        hyperparameters=hyperparameters)  # fmt: skip


def test_artifacts_without_a_class_bias_still_load():
    assert Calibration.from_meta(_meta(temperature=1.7)) == Calibration(1.7, ())
    assert Calibration.from_meta(_meta()) == Calibration(1.0, ())
    assert Calibration.from_meta(_meta(temperature=1.2, class_bias=[0.1, -0.1])).class_bias == (0.1, -0.1)


def test_a_class_bias_that_does_not_match_the_labels_is_refused():
    with pytest.raises(ArtifactError, match="class_bias has 3 values for 2 labels"):
        Calibration.from_meta(_meta(class_bias=[0.1, 0.0, -0.1]))
