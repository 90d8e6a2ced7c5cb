"""The recommend-side commands through the real entry point: JSON shapes, tables, one-line errors (exit 2)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepmf.cli.app import _register, app
from deepmf.cli.common import run_app
from deepmf.data.ratings import ItemTable, Ratings
from deepmf.data.splits import parse_split
from deepmf.experiment import run_experiment, train_config_for
from deepmf.recommender import Recommender

FAST = {"epochs": 3, "batch_size": 256, "engine": "torch"}


def _frame(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    users, items = np.meshgrid(np.arange(1, 31), np.arange(1, 41), indexing="ij")
    keep = rng.random(users.size) < 0.5
    taste = rng.normal(size=(31, 2)) @ rng.normal(size=(2, 41))  # some structure for the models to find
    rating = np.clip(np.rint(3 + taste[users.ravel()[keep], items.ravel()[keep]]), 1, 5)
    return pd.DataFrame({"user": users.ravel()[keep], "item": items.ravel()[keep], "rating": rating})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = Ratings.from_frame(_frame())
    genres = np.eye(3, dtype=bool)[np.arange(raw.n_items) % 3]
    raw_items = raw.item_ids.raw(np.arange(raw.n_items))
    titles = np.array([f"Film {i} ({1950 + i})" for i in raw_items], dtype=object)
    data = Ratings(raw.users, raw.items, raw.ratings, raw.user_ids, raw.item_ids, raw.scale,
                   item_table=ItemTable(titles, genres, ("Drama", "Comedy", "Horror")))
    split = parse_split("random:0.2", data, seed=0)[0]
    result = run_experiment(data, split, "mf", {"factors": 4}, train_config_for("mf", FAST), progress=False)
    return result.recommender.save(tmp_path_factory.mktemp("cli") / "model")


@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "ratings.csv"
    _frame(1).to_csv(path, index=False)
    return path


def deepmf(*argv: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
           ) -> tuple[int, str, str]:
    """Run ``deepmf ARGV`` in-process through the console entry point's error handling."""
    _register()
    monkeypatch.setattr(sys, "argv", ["deepmf", *map(str, argv)])
    try:
        code = run_app(app)
    except SystemExit as exc:  # typer exits with the command's status
        code = exc.code if isinstance(exc.code, int) else 1
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture()
def run(capsys, monkeypatch):
    return lambda *argv: deepmf(*argv, capsys=capsys, monkeypatch=monkeypatch)


def test_predict_json(run, model_dir: Path) -> None:
    code, out, _ = run("predict", model_dir, 3, 7, "--json")
    assert code == 0
    payload = json.loads(out)
    assert set(payload) == {"user", "item", "prediction"}
    assert payload["user"] == 3 and payload["item"] == 7
    assert payload["prediction"] == pytest.approx(Recommender.load(model_dir).predict(3, 7).prediction)


def test_predict_cold_start_bias_says_so(run, model_dir: Path) -> None:
    code, out, _ = run("predict", model_dir, 999, 7, "--cold-start", "bias", "--json")
    assert code == 0 and json.loads(out)["cold_start"] == "user"
    code, out, _ = run("predict", model_dir, 999, 7, "--cold-start", "bias")
    assert code == 0 and "cold start" in out


def test_recommend_json_and_table(run, model_dir: Path) -> None:
    rec = Recommender.load(model_dir)
    code, out, _ = run("recommend", model_dir, 5, "-n", 4, "--json")
    assert code == 0
    payload = json.loads(out)
    assert set(payload) == {"user", "items"} and payload["user"] == 5
    assert [set(item) for item in payload["items"]] == [{"item", "title", "score"}] * 4
    assert [i["item"] for i in payload["items"]] == rec.recommend(5, n=4)["item"].tolist()
    seen = set(rec.rated_vs_predicted(5)["item"])
    assert not seen & {i["item"] for i in payload["items"]}
    code, out, _ = run("recommend", model_dir, 5, "-n", 40, "--include-seen", "--json")
    assert seen <= {i["item"] for i in json.loads(out)["items"]}
    code, out, _ = run("recommend", model_dir, 5, "-n", 3)
    assert code == 0 and "Top 3 for user 5" in out and "Film" in out
    counts = rec.seen.item_counts()
    code, out, _ = run("recommend", model_dir, 5, "-n", 40, "--min-ratings", int(counts.max()), "--json")
    busiest = {int(rec.item_ids.raw(i)) for i in np.flatnonzero(counts == counts.max())}
    assert code == 0 and {i["item"] for i in json.loads(out)["items"]} <= busiest
    code, _, err = run("recommend", model_dir, 5, "--min-ratings", -1)
    assert code == 2 and "min_ratings" in err


def test_rated_json(run, model_dir: Path) -> None:
    code, out, _ = run("rated", model_dir, 2, "--json")
    payload = json.loads(out)
    assert code == 0 and payload["user"] == 2
    assert payload["items"] and set(payload["items"][0]) == {"item", "title", "rating", "prediction"}
    code, out, _ = run("rated", model_dir, 2)
    assert code == 0 and "actual vs predicted" in out


def test_similar_by_id_and_by_title(run, model_dir: Path) -> None:
    code, out, _ = run("similar", model_dir, 10, "-n", 5, "--json")
    payload = json.loads(out)
    assert code == 0 and set(payload) == {"item", "title", "similar"}
    assert payload["item"] == 10 and payload["title"] == "Film 10 (1960)"
    assert len(payload["similar"]) == 5 and 10 not in [s["item"] for s in payload["similar"]]
    code, out, _ = run("similar", model_dir, "film 10 (1960)", "-n", 5, "--json")
    assert code == 0 and json.loads(out) == payload
    code, out, _ = run("similar", model_dir, 10, "--metric", "dot")
    assert code == 0 and "Most similar to 10" in out


@pytest.mark.parametrize("argv", [
    ("recommend", "{m}", 5, "-n", 0),
    ("recommend", "{m}", 5, "-n", -2),
    ("similar", "{m}", 10, "-n", 0),
    ("recommend", "{m}", 12345),
    ("predict", "{m}", 1, "no-such-item"),
    ("similar", "{m}", "Casablanca"),
    ("rated", "{m}/missing", 1),
    ("predict", "{m}", 1, 2, "--cold-start", "maybe"),
])
def test_bad_requests_give_one_line_and_exit_2(run, model_dir: Path, argv) -> None:
    code, out, err = run(*(str(a).format(m=model_dir) for a in argv))
    assert code == 2
    assert out == ""
    assert err.strip().startswith("error:") and len(err.strip().splitlines()) == 1


def test_incompatible_version_is_refused(run, model_dir: Path, tmp_path: Path) -> None:
    import shutil

    copy = Path(shutil.copytree(model_dir, tmp_path / "old"))
    meta = json.loads((copy / "model.json").read_text())
    meta["format_version"] = 7
    (copy / "model.json").write_text(json.dumps(meta))
    code, _, err = run("recommend", copy, 1)
    assert code == 2 and "not supported" in err and len(err.strip().splitlines()) == 1


def test_plot_writes_pngs(run, model_dir: Path, tmp_path: Path) -> None:
    code, out, _ = run("plot", model_dir, "--out", tmp_path / "pics", "--json")
    files = [Path(f) for f in json.loads(out)["files"]]
    assert code == 0
    assert sorted(f.name for f in files) == ["item_map.png", "learning_curves.png", "ratings_histogram.png"]
    assert all(f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in files)


def test_evaluate_kfold_json(run, ratings_csv: Path) -> None:
    code, out, _ = run("evaluate", ratings_csv, "--model", "mf", "--split", "kfold:2", "-o", "factors=3",
                       "--epochs", 2, "-t", "engine=\"torch\"", "-k", 5, "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["model"] == "mf" and payload["split"] == "kfold:2" and payload["k"] == 5
    assert len(payload["folds"]) == 2
    rmses = [fold["rmse"] for fold in payload["folds"]]
    assert payload["mean"]["rmse"] == pytest.approx(np.mean(rmses))
    assert payload["std"]["rmse"] == pytest.approx(np.std(rmses))
    assert all(fold["epochs_run"] == 2 for fold in payload["folds"])


def test_evaluate_table_and_saved_folds(run, ratings_csv: Path, tmp_path: Path) -> None:
    code, out, _ = run("evaluate", ratings_csv, "--model", "mf", "--split", "kfold:2", "--epochs", 1,
                       "--out", tmp_path / "folds", "--quiet")
    assert code == 0 and "mean" in out and "std" in out and "RMSE" in out
    saved = sorted(p.name for p in (tmp_path / "folds").iterdir())
    assert len(saved) == 2
    folds = [Recommender.load(tmp_path / "folds" / name) for name in saved]
    assert all(fold.model_name == "mf" and len(fold.history) == 1 for fold in folds)
    # Two folds of kfold:2 train on the two halves of the data: together they saw every rating once.
    assert sum(int(fold.seen.user_counts().sum()) for fold in folds) == len(pd.read_csv(ratings_csv))


def test_compare_json(run, ratings_csv: Path, tmp_path: Path) -> None:
    code, out, _ = run("compare", ratings_csv, "--models", "mf,deepmf", "--epochs", 2, "-o", "factors=4",
                       "-o", "deepmf.layers=[8]", "--report", tmp_path / "report", "--json")
    assert code == 0
    payload = json.loads(out)
    assert [row["model"] for row in payload["models"]] == ["mf", "deepmf"]
    assert all(row["folds"] == 1 and row["epochs_run"] == 2 for row in payload["models"])
    # Each row is the run the Python API makes with the same options on the same split (seed 0).
    data = Ratings.from_frame(pd.read_csv(ratings_csv))
    (split,) = parse_split(payload["split"], data, seed=0)
    for row, (name, options) in zip(payload["models"], [("mf", {"factors": 4}),
                                                        ("deepmf", {"factors": 4, "layers": [8]})], strict=True):
        result = run_experiment(data, split, name, options, train_config_for(name, {"epochs": 2}), progress=False)
        for metric in ("rmse", "mae", "precision", "ndcg", "coverage"):
            assert row[metric] == pytest.approx(result.metrics[metric], rel=1e-6), (name, metric)
    assert (tmp_path / "report" / "report.md").read_text().count("## ") >= 3
    import numba

    # Each row says which engine and how many threads ran: torch on one thread on data this small (by
    # measurement, deepmf.device), the numba MF engine on every core.
    assert {row["model"]: (row["engine"], row["threads"]) for row in payload["models"]} == {
        "mf": ("numba", numba.config.NUMBA_NUM_THREADS), "deepmf": ("torch", 1)}


def test_evaluate_moves_an_option_numba_cannot_honour_to_torch(run, ratings_csv: Path) -> None:
    code, out, err = run("evaluate", ratings_csv, "--model", "mf", "--epochs", "2", "-t", "optimizer=adam",
                         "--split", "random:0.2", "--json")
    assert code == 0 and json.loads(out)["folds"][0]["engine"] == "torch"
    assert "the numba engine cannot honour optimizer=adam" in err


@pytest.mark.parametrize(("argv", "message"), [
    (("--models", "mf,nosuchmodel"), "unknown model"),
    (("--models", "mf", "-o", "deepmf.factors=3"), "not one of the models trained here (mf)"),
    (("--models", "mf", "-o", "factors"), "not KEY=VALUE"),
    (("--models", "mf", "--split", "wat:3"), "unknown split"),
])
def test_compare_refuses_bad_requests(run, ratings_csv: Path, argv, message: str) -> None:
    code, _, err = run("compare", ratings_csv, *argv)
    assert code == 2 and message in err


def test_evaluate_defaults_to_mf_as_train_does(run, ratings_csv: Path) -> None:
    code, out, _ = run("evaluate", ratings_csv, "--epochs", "1", "--json")
    assert code == 0 and json.loads(out)["model"] == "mf"


def test_plot_test_file_takes_the_column_flags(run, model_dir: Path, tmp_path: Path) -> None:
    test = tmp_path / "held_out.csv"
    _frame(1).rename(columns={"user": "uid", "item": "sku", "rating": "stars"}).to_csv(test, index=False)
    code, out, _ = run("plot", model_dir, "--out", tmp_path / "pics", "--test", test, "--user-col", "uid",
                       "--item-col", "sku", "--rating-col", "stars", "--json")
    assert code == 0
    assert "ratings_histogram.png" in {Path(f).name for f in json.loads(out)["files"]}
