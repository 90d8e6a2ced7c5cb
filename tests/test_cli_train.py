"""``deepmf train`` and ``deepmf synthetic`` through the console entry point.

JSON keys, saved folders, resume, and one-line errors with exit code 2 for bad hyperparameters.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepmf.data import load
from deepmf.data.splits import parse_split
from deepmf.experiment import run_experiment, train_config_for
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
    # Throughput is the training ratings over the time of the training passes (validation excluded), so the
    # run's rate is the harmonic mean of the epochs' rates and no epoch's pass outlasts its whole epoch.
    pass_seconds = [payload["n_train"] / h["ratings_per_second"] for h in payload["history"]]
    assert all(0 < t <= h["seconds"] for t, h in zip(pass_seconds, payload["history"], strict=True))
    assert payload["ratings_per_second"] == pytest.approx(2 * payload["n_train"] / sum(pass_seconds))
    assert payload["train_seconds"] == pytest.approx(sum(h["seconds"] for h in payload["history"]))


def test_classification_head_reports_accuracy(run, ratings_csv: Path, tmp_path: Path) -> None:
    """Both readings of a classifier, recomputed by hand from the saved model's class scores on the test part."""
    code, out, _ = run("train", ratings_csv, "--model", "deepmf", "--head", "classification", "--layers", "8",
                       "--factors", "4", "--out", tmp_path / "model", "--json", *FAST)
    assert code == 0
    payload = json.loads(out)
    test = payload["test"]
    assert payload["cold_test_ratings"] == 0 and test["n_ratings"] == payload["n_test"]
    (split,) = parse_split("random:0.2", load(ratings_csv), seed=0)  # the split train made (seed 0)
    model = Recommender.load(tmp_path / "model").model.eval()
    with torch.no_grad():
        probabilities = torch.softmax(model(torch.from_numpy(split.test.users).long(),
                                            torch.from_numpy(split.test.items).long()), dim=-1).double().numpy()
    stars = np.arange(1.0, 6.0)  # the classes of a 1..5 scale, step 1
    expected = np.clip(probabilities @ stars, 1, 5)
    most_likely = stars[probabilities.argmax(axis=1)]
    actual = split.test.ratings
    assert test["rmse"] == pytest.approx(np.sqrt(np.mean((expected - actual) ** 2)), rel=1e-5)
    assert test["mae"] == pytest.approx(np.mean(np.abs(expected - actual)), rel=1e-5)
    assert test["accuracy"] == pytest.approx(np.mean(most_likely == actual))
    assert test["rmse_most_likely"] == pytest.approx(np.sqrt(np.mean((most_likely - actual) ** 2)), rel=1e-5)
    assert test["mae_most_likely"] == pytest.approx(np.mean(np.abs(most_likely - actual)), rel=1e-5)


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
    code, out, _ = run("train", ratings_csv, "--config", config, "--epochs", "1", "--out", tmp_path / "model",
                       "--json", "--quiet")
    assert code == 0
    payload = json.loads(out)
    assert payload["model"] == "deepmf" and payload["epochs_run"] == 1
    saved = Recommender.load(tmp_path / "model")
    assert tuple(saved.model.config_dict()["layers"]) == (6,) and saved.model.config_dict()["factors"] == 3
    assert saved.model.user_embedding.weight.shape == (30, 3) and saved.model.tower[0].weight.shape == (6, 6)
    assert saved.train_config.optimizer == "adamw" and saved.train_config.epochs == 1
    # The weights are exactly those of the same run through the Python API with AdamW, not with another
    # optimizer: the file's training options reached the trainer, not only the report.
    (split,) = parse_split("random:0.2", load(ratings_csv), seed=0)

    def weights(optimizer: str) -> dict[str, torch.Tensor]:
        config = train_config_for("deepmf", {"epochs": 1, "optimizer": optimizer})
        result = run_experiment(load(ratings_csv), split, "deepmf", {"layers": [6], "factors": 3}, config,
                                progress=False)
        return result.recommender.model.state_dict()

    torch.testing.assert_close(weights("adamw"), saved.model.state_dict(), rtol=0, atol=0)
    assert not torch.equal(weights("sgd")["item_embedding.weight"], saved.model.item_embedding.weight)


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


def test_help_prints_extras_literally(run) -> None:
    # Typer reads help as rich markup: "deepmf[tensorboard]" printed as "deepmf", hiding the extra to install.
    code, out, _ = run("train", "--help")
    assert code == 0 and "deepmf[tensorboard]" in " ".join(out.split())
