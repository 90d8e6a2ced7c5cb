"""End-to-end on real ML-100K u1 (issue 4's bounds): validation carved from u1.base, u1.test read once."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepmf.data import load
from deepmf.data.splits import parse_split, validation_split
from deepmf.evaluation.metrics import accuracy, rmse
from deepmf.experiment import train_config_for
from deepmf.training.fit import train_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def u1(ml100k_dir: Path):
    data = load(ml100k_dir)
    split = parse_split("u1", data)[0]
    train, valid = validation_split(split.train, 0.05, seed=0)
    return data, train, valid, split.test


def _test_predictions(trained, test, most_likely: bool = False):
    tensors = test.to()
    scale = test.scale
    predicted = trained.model.predict_in_batches(tensors.users, tensors.items, most_likely=most_likely)
    return predicted.clamp(scale.minimum, scale.maximum), tensors.ratings


@pytest.mark.parametrize("engine", ["torch", "auto"])
def test_biased_mf_reaches_0_945_on_u1(u1, engine: str) -> None:
    """Issue 4's bound. Measured 0.932..0.935 (torch) and 0.928..0.931 (auto: numba) over training seeds 0..4;
    biases-only scores 0.960."""
    data, train, valid, test = u1
    config = train_config_for("mf", {"engine": engine, "threads": 1})
    trained = train_model("mf", data, train, valid, {}, config, progress=False)
    assert rmse(*_test_predictions(trained, test)) <= 0.945


def test_deep_mf_reaches_0_95_on_u1(u1) -> None:
    """Measured 0.935..0.944 over training seeds 0..4; biases-only scores 0.960 on u1 (see below)."""
    data, train, valid, test = u1
    config = train_config_for("deepmf", {"threads": 1})
    trained = train_model("deepmf", data, train, valid, {"factors": 32, "layers": (64, 64)}, config,
                          progress=False)
    assert trained.result.engine == "torch"
    assert rmse(*_test_predictions(trained, test)) <= 0.95


def test_classification_head_accuracy_and_both_rmses_on_u1(u1) -> None:
    data, train, valid, test = u1
    config = train_config_for("deepmf", {"threads": 1})
    trained = train_model("deepmf", data, train, valid, {"head": "classification"}, config, progress=False)
    most_likely, actual = _test_predictions(trained, test, most_likely=True)
    expected, _ = _test_predictions(trained, test)
    # Bounds between what training seeds 0..11 measured and what a trivial predictor scores on u1.test
    # (u1.base's global mean 3.528, its mode 4, biases-only ALS as Surprise's BaselineOnly): bench/bounds.py.
    # Accuracy measured 0.442..0.451; always 4 scores 0.339 and the rounded biases-only rating 0.400.
    assert accuracy(most_likely, actual) >= 0.43
    # Expected rating measured 0.937..0.945; biases-only scores 0.960.
    assert rmse(expected, actual) <= 0.95
    # Most likely class measured 1.081..1.127; the global mean scores 1.154 (always 4: 1.244). The expected
    # rating stays the better RMSE predictor.
    assert rmse(expected, actual) < rmse(most_likely, actual) < 1.15
