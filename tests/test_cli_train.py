"""``deepmf train`` and ``deepmf synthetic`` through the console entry point.

JSON keys, saved folders, resume, and one-line errors with exit code 2 for bad hyperparameters.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepmf.recommender import Recommender

FAST = ("--epochs", "2", "--batch-size", "128", "--threads", "1", "--quiet")


def _frame(seed: int, n_users: int = 30, n_items: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    users, items = np.meshgrid(np.arange(1, n_users + 1), np.arange(1, n_items + 1), indexing="ij")
    keep = rng.random(users.size) < 0.5
    taste = rng.normal(size=(n_users + 1, 2)) @ rng.normal(size=(2, n_items + 1))
    rating = np.clip(np.rint(3 + taste[users.ravel()[keep], items.ravel()[keep]]), 1, 5)
    return pd.DataFrame({"user": users.ravel()[keep], "item": items.ravel()[keep], "rating": rating})


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    _frame(0).to_csv(path, index=False)
    return path


def test_train_json_has_the_issue_keys(run, ratings_csv: Path) -> None:
    code, out, _ = run("train", ratings_csv, "--model", "mf", "--split", "random:0.2", "--factors", "4",
                       "--json", *FAST)
    assert code == 0
    payload = json.loads(out)
    assert {"model", "split", "n_train", "n_test", "epochs_run", "history", "test", "train_seconds",
            "ratings_per_second", "engine"} <= set(payload)
    assert payload["model"] == "mf" and payload["split"] == "random:0.2" and payload["epochs_run"] == 2
    assert payload["n_train"] + payload["n_valid"] + payload["n_test"] == len(pd.read_csv(ratings_csv))
    assert [h["epoch"] for h in payload["history"]] == [1, 2]
    assert all({"epoch", "train_rmse", "val_rmse", "seconds"} <= set(h) for h in payload["history"])
    assert {"rmse", "mae"} <= set(payload["test"]) and "accuracy" not in payload["test"]
    assert payload["ratings_per_second"] > 0


def test_classification_head_reports_accuracy(run, ratings_csv: Path) -> None:
    code, out, _ = run("train", ratings_csv, "--model", "deepmf", "--head", "classification", "--layers", "8",
                       "--factors", "4", "--json", *FAST)
    assert code == 0
    test = json.loads(out)["test"]
    assert 0 <= test["accuracy"] <= 1 and test["rmse"] > 0
    # The most likely class is a rating on the scale, so its RMSE is a second, separate reading.
    assert test["rmse_most_likely"] > 0 and test["mae_most_likely"] > 0


def test_human_output_prints_the_epoch_table_and_summary(run, ratings_csv: Path) -> None:
    code, out, _ = run("train", ratings_csv, "--model", "neumf", "--layers", "8,4", *FAST)
    assert code == 0
    assert "train RMSE" in out and "val RMSE" in out and "test RMSE" in out


def test_out_leaves_a_loadable_model_and_a_checkpoint_and_resume_continues(run, ratings_csv: Path,
                                                                          tmp_path: Path) -> None:
    out_dir = tmp_path / "model"
    args = ("train", ratings_csv, "--model", "mf", "--factors", "4", "--out", out_dir, "--json", *FAST)
    code, first, _ = run(*args)
    assert code == 0
    assert (out_dir / "checkpoint" / "state.json").exists()
    loaded = Recommender.load(out_dir)
    assert loaded.model_name == "mf"
    code, again, _ = run(*args, "--resume")
    assert code == 0
    # The run had finished: resuming trains nothing more and reports the same test result.
    assert json.loads(again)["test"]["rmse"] == json.loads(first)["test"]["rmse"]
    code, _, err = run("train", ratings_csv, "--model", "deepmf", "--out", out_dir, "--resume", *FAST)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "model 'mf'" in err


@pytest.mark.parametrize("flags, message", [
    (("--lr", "-0.1"), "learning rate"),
    (("--factors", "0"), "factors"),
    (("--optimizer", "adamax"), "unknown optimizer"),
    (("--model", "deepmf", "--features", "genre"), "genres"),
    (("--model", "deepmf", "--layers", "64,abc"), "layers"),
    (("--resume",), "--out"),
    (("--model", "svd"), "unknown model"),
    (("--split", "random:2"), "unknown split"),
])
def test_bad_hyperparameters_give_one_line_and_exit_2(run, ratings_csv: Path, flags, message) -> None:
    code, out, err = run("train", ratings_csv, *flags, *FAST)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_test_file_trains_on_all_of_data(run, ratings_csv: Path, tmp_path: Path) -> None:
    test_csv = tmp_path / "test.csv"
    _frame(1, n_users=35).to_csv(test_csv, index=False)  # users 31..35 are new: cold
    code, out, _ = run("train", ratings_csv, "--test", test_csv, "--val-fraction", "0", "--json", *FAST)
    assert code == 0
    payload = json.loads(out)
    assert payload["n_train"] == len(pd.read_csv(ratings_csv)) and payload["n_valid"] == 0
    assert payload["n_test"] == len(pd.read_csv(test_csv))
    assert payload["cold_users"] == 5 and payload["split"] == "test:test.csv"


def test_config_file_sets_options_and_flags_override_it(run, ratings_csv: Path, tmp_path: Path) -> None:
    config = tmp_path / "run.json"
    config.write_text(json.dumps({"model": "deepmf", "model_options": {"layers": [6], "factors": 3},
                                  "train_options": {"epochs": 3, "optimizer": "adamw"}}))
    code, out, _ = run("train", ratings_csv, "--config", config, "--epochs", "1", "--json", "--quiet")
    assert code == 0
    payload = json.loads(out)
    assert payload["model"] == "deepmf" and payload["epochs_run"] == 1


@pytest.mark.parametrize("kind, optimizer, share", [("noise", "adam", None), ("lowrank", "sgd", (-0.01, 0.01)),
                                                   ("lowrank", "adam", (0.03, 0.15))])
def test_synthetic_reproduces_tutorial_000(run, kind: str, optimizer: str, share) -> None:
    """Five epochs, the tutorial's run: Adam starts to learn the low-rank matrix (a few percent of the way to the
    noise floor) and SGD does not move; neither has learned it, and noise has nothing to learn."""
    code, out, _ = run("synthetic", "--kind", kind, "--optimizer", optimizer, "--threads", "1", "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["learned"] is False and len(payload["history"]) == 5
    assert payload["n_train"] == 25_000 and payload["n_valid"] == 10_000
    assert "50% of the way" in payload["criterion"]
    if share is None:
        assert payload["share_learned"] is None
        assert payload["final_val_rmse"] == pytest.approx(payload["valid_std"], rel=0.02)
    else:
        assert payload["noise_floor"] == 0.0
        assert share[0] <= payload["share_learned"] <= share[1]


def test_optimizer_adam_on_mf_runs_adam_and_says_so(run, ratings_csv: Path) -> None:
    """The numba engine only runs SGD: --optimizer adam moves MF to the torch engine, visibly, and the run
    records what it did (it used to run SGD, report "adam" and score like --optimizer sgd)."""
    runs = {}
    for optimizer in ("adam", "sgd"):
        code, out, err = run("train", ratings_csv, "--optimizer", optimizer, "--epochs", "3", "--patience", "0",
                             "--quiet", "--json")
        assert code == 0
        runs[optimizer] = (json.loads(out), err)
    adam, adam_err = runs["adam"]
    sgd, sgd_err = runs["sgd"]
    assert (adam["engine"], sgd["engine"]) == ("torch", "numba")
    assert adam["engine_note"] == "the numba engine cannot honour optimizer=adam" and sgd["engine_note"] is None
    assert "training with the torch engine" in adam_err and "engine" not in sgd_err
    assert adam["test"]["rmse"] != pytest.approx(sgd["test"]["rmse"], abs=1e-4)


def test_an_option_no_engine_of_the_model_honours_is_an_error(run, ratings_csv: Path) -> None:
    code, _, err = run("train", ratings_csv, "--model", "bayes", "--lr", "0.01", "--quiet")
    assert code == 2 and "the gibbs engine cannot honour lr=0.01" in err
    code, _, err = run("train", ratings_csv, "--model", "mf", "--engine", "numba", "--batch-size", "64", "--quiet")
    assert code == 2 and "the numba engine cannot honour batch_size=64" in err
