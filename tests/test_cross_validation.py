"""Experiments and cross-validation on small synthetic data: bookkeeping, aggregation and config files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepmf.data.splits import parse_split
from deepmf.data.synthetic import synthetic_ratings
from deepmf.errors import ConfigError
from deepmf.evaluation.cross_validation import CrossValidationResult, cross_validate
from deepmf.experiment import RunConfig, run_experiment, train_config_for
from deepmf.models.registry import default_train_options

FAST = {"epochs": 3, "batch_size": 512, "engine": "torch"}


@pytest.fixture(scope="module")
def data():
    return synthetic_ratings("lowrank", n_users=60, n_items=50, rank=3, n_observed=1800, seed=1)


def test_run_experiment_bookkeeping(data) -> None:
    split = parse_split("random:0.2", data, seed=0)[0]
    result = run_experiment(data, split, "mf", {"factors": 4}, train_config_for("mf", FAST),
                            valid_fraction=0.1, progress=False)
    assert result.n_train + result.n_valid == len(split.train)
    assert result.n_valid == pytest.approx(0.1 * len(split.train), abs=2)
    assert result.n_test == len(split.test)
    assert result.metrics["n_ratings"] == len(split.test)
    assert result.cold["cold_test_ratings"] == split.cold_test_ratings
    assert result.recommender.evaluation is result.evaluation
    summary = result.to_dict()
    assert summary["test"]["rmse"] == result.metrics["rmse"]
    assert [r["epoch"] for r in summary["history"]] == [1, 2, 3]
    assert json.dumps(summary)  # one JSON object, no numpy leftovers
    # Every training rating is "seen", the validation part included.
    assert result.recommender.seen.indptr[-1] == len(split.train)


def test_run_experiment_without_validation(data) -> None:
    split = parse_split("random:0.2", data, seed=0)[0]
    result = run_experiment(data, split, "mf", {"factors": 4}, train_config_for("mf", FAST), valid_fraction=0,
                            progress=False)
    assert result.n_valid == 0 and result.n_train == len(split.train)
    assert all(record.get("val_rmse") is None for record in result.recommender.history)
    with pytest.raises(ConfigError, match="validation fraction"):
        run_experiment(data, split, "mf", valid_fraction=1.0)


def test_cross_validate_reports_each_fold_and_population_std(data) -> None:
    splits = parse_split("kfold:3", data, seed=0)
    seen = []
    cv = cross_validate(data, splits, "mf", {"factors": 4}, train_config_for("mf", FAST), progress=False,
                        on_fold=seen.append)
    assert len(cv.folds) == 3 == len(seen)
    assert [row["split"] for row in cv.folds] == [s.name for s in splits]
    rmses = np.array([row["rmse"] for row in cv.folds])
    assert cv.mean["rmse"] == pytest.approx(rmses.mean())
    assert cv.std["rmse"] == pytest.approx(np.sqrt(np.mean((rmses - rmses.mean()) ** 2)))
    assert "accuracy" not in cv.mean  # regression head: no accuracy column
    assert sum(row["n_test"] for row in cv.folds) == len(data)
    out = cv.to_dict()
    assert set(out) == {"model", "folds", "mean", "std"} and out["model"] == "mf"


def test_mean_skips_metrics_missing_in_a_fold() -> None:
    cv = CrossValidationResult("x", [{"rmse": 1.0, "accuracy": 0.5}, {"rmse": 3.0}])
    assert cv.mean == {"rmse": 2.0} and cv.std == {"rmse": 1.0}


def test_cross_validate_needs_splits(data) -> None:
    with pytest.raises(ConfigError, match="at least one split"):
        cross_validate(data, [], "mf")


def test_train_config_for_layers_overrides_on_defaults() -> None:
    config = train_config_for("mf", {"epochs": 2, "lr": None})
    assert config.epochs == 2
    assert config.lr == default_train_options("mf").get("lr", config.lr)
    with pytest.raises(ConfigError):
        train_config_for("mf", {"learning_rate": 1})


def test_run_config_file(tmp_path: Path) -> None:
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"model": "mf", "model_options": {"factors": 8},
                                "train_options": {"lr": 0.1}}))
    config = RunConfig.read(path)
    assert (config.model, config.model_options, config.train_options) == ("mf", {"factors": 8}, {"lr": 0.1})
    for text, match in (("{", "not a valid JSON"), ("[]", "JSON object"), ('{"modle": "mf"}', "unknown key"),
                        ('{"model_options": 3}', "must be")):
        path.write_text(text)
        with pytest.raises(ConfigError, match=match):
            RunConfig.read(path)
    with pytest.raises(ConfigError, match="does not exist"):
        RunConfig.read(tmp_path / "missing.json")
