"""``tune`` and ``deepmf tune``: the search scores trials on validation carved from training parts only, and
writes a config that ``deepmf train --config`` reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from deepmf.data.splits import make_split, random_split
from deepmf.errors import ConfigError
from deepmf.experiment import RunConfig
from deepmf.testing.conformance import conformance_data

# Optuna is the one search library; a machine without it (the GPU image) skips these and tune says why.
pytest.importorskip("optuna")
from deepmf.tune import tune

ONE_THREAD = {"threads": 1, "epochs": 8}


@pytest.fixture(scope="module")
def data():
    return conformance_data()


def test_best_trial_is_the_lowest_validation_rmse_and_round_trips(data, tmp_path: Path) -> None:
    split = random_split(data, 0.2, seed=0)
    result = tune(data, [split], "mf", 3, fixed_train=ONE_THREAD)
    assert len(result.trials) == 3
    assert result.best_rmse == min(t["val_rmse"] for t in result.trials)
    assert 8 <= result.model_options["factors"] <= 256
    assert result.n_valid == [round(0.1 * len(split.train))]
    path = tmp_path / "best.json"
    result.write(path)
    config = RunConfig.read(path)
    assert (config.model, config.model_options, config.train_options) == (
        "mf", result.model_options, result.train_options)


def test_test_ratings_are_never_read(data) -> None:
    split = random_split(data, 0.2, seed=0)
    blind = make_split(split.train, split.test.with_ratings(np.full(len(split.test), np.nan)), split.name)
    seen, unseen = (tune(data, [s], "svdpp", 2, fixed_train=ONE_THREAD) for s in (split, blind))
    assert np.isfinite(seen.best_rmse)
    assert [t["val_rmse"] for t in seen.trials] == [t["val_rmse"] for t in unseen.trials]


def test_refuses_what_it_cannot_search(data) -> None:
    split = random_split(data, 0.2, seed=0)
    with pytest.raises(ConfigError, match="search space"):
        tune(data, [split], "blend", 1)
    with pytest.raises(ConfigError, match="trials"):
        tune(data, [split], "mf", 0)
    with pytest.raises(ConfigError, match="split"):
        tune(data, [], "mf", 1)


def test_cli_writes_a_config_for_train(run, data, tmp_path: Path) -> None:
    source = tmp_path / "ratings.csv"
    data.to_frame().to_csv(source, index=False)
    out = tmp_path / "best.json"
    code, stdout, _ = run("tune", source, "--model", "autorec", "--trials", "2", "--threads", "1",
                          "--out", out, "--json")
    assert code == 0
    summary = json.loads(stdout)
    assert summary["model"] == "autorec" and len(summary["trials"]) == 2
    written = json.loads(out.read_text())
    assert written == {"written_by": "deepmf tune",
                       **{k: summary[k] for k in ("model", "model_options", "train_options", "tuned_on")}}
    assert written["tuned_on"] == {"data": source.name, "split": "random:0.2", "seed": 0}
    code, stdout, err = run("train", source, "--config", out, "--epochs", "3", "--quiet", "--json")
    assert code == 0 and json.loads(stdout)["model"] == "autorec"
    assert "tuned on" not in err  # the split tune searched on: its test part was never read
    code, stdout, err = run("train", source, "--config", out, "--split", "random:0.3", "--epochs", "3", "--quiet",
                            "--json")
    assert code == 0 and "was tuned on" in err and "random:0.3" in err
    code, _, err = run("tune", source, "--model", "blend", "--trials", "1")
    assert code == 2 and "search space" in err


def test_cli_shows_each_trial_unless_json(run, data, tmp_path: Path) -> None:
    source = tmp_path / "ratings.csv"
    data.to_frame().to_csv(source, index=False)
    code, stdout, err = run("tune", source, "--model", "mf", "--trials", "2", "--threads", "1", "--split", "user:0.2")
    assert code == 0 and "trial 0: validation RMSE" in err and "trial 1: validation RMSE" in err
    assert "best validation RMSE" in stdout
    code, stdout, err = run("tune", source, "--model", "mf", "--trials", "1", "--threads", "1", "--json")
    assert code == 0 and err == "" and json.loads(stdout)["split"] == "random:0.2"


def test_cli_fixes_the_options_given_as_flags_in_every_trial(run, data, tmp_path: Path) -> None:
    source = tmp_path / "ratings.csv"
    data.to_frame().to_csv(source, index=False)
    code, stdout, err = run("tune", source, "--model", "deepmf", "--trials", "2", "--threads", "1", "--epochs", "2",
                            "--layers", "8", "-o", "dropout=0.1", "--lr", "0.02", "--json")
    assert code == 0, err
    summary = json.loads(stdout)
    for record in (*summary["trials"], summary):
        assert record["model_options"]["layers"] == "8" and record["model_options"]["dropout"] == 0.1
        assert {"lr": 0.02, "epochs": 2, "threads": 1}.items() <= record["train_options"].items()
        assert 8 <= record["model_options"]["factors"] <= 128  # searched: not given
    code, stdout, err = run("tune", source, "--model", "mf", "--trials", "1", "--layers", "8", "--json")
    assert code == 2 and "model 'mf' does not take --layers 8" in json.loads(stdout)["error"]
