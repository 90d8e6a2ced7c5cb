"""The figures behind the tests' accuracy bounds: each bounded run over several seeds, beside trivial baselines.

    DEEPMF_DATA=../shared/data python bench/bounds.py              # every check, seeds 0..4
    DEEPMF_DATA=../shared/data python bench/bounds.py --seeds 12 --only cls

A bound must sit between what the code measures (with margin for seed noise) and what a trivial predictor
scores on the same data, so that a regression to the trivial predictor fails the test. Rerun this when a
default changes and move the bounds in the tests (their comments quote these figures).

Baselines, computed here from the training part only and scored on the test part:

- global mean: every rating predicted as the training mean;
- always mode: the most frequent training rating (accuracy; its RMSE);
- biases only: mean + user bias + item bias by alternating least squares (Surprise's BaselineOnly: 10 sweeps,
  reg 15 for users, 10 for items; on the generated low-rank sets reg 1 and 20 sweeps), also rounded to a class.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import numpy as np

from _common import data_root, machine_line, markdown_table


def baselines(train: Any, test: Any, reg_user: float = 15.0, reg_item: float = 10.0,
              sweeps: int = 10) -> dict[str, float]:
    """RMSE / accuracy of the trivial predictors above, fitted on ``train`` and scored on ``test``."""
    y = test.ratings.astype(np.float64)
    mean = float(train.ratings.mean(dtype=np.float64))
    values, counts = np.unique(train.ratings, return_counts=True)
    mode = float(values[counts.argmax()])
    users, items, r = train.users, train.items, train.ratings.astype(np.float64)
    user_bias, item_bias = np.zeros(train.n_users), np.zeros(train.n_items)
    for _ in range(sweeps):
        item_bias = np.bincount(items, r - mean - user_bias[users], train.n_items) / (
            reg_item + np.bincount(items, minlength=train.n_items))
        user_bias = np.bincount(users, r - mean - item_bias[items], train.n_users) / (
            reg_user + np.bincount(users, minlength=train.n_users))
    biased = np.clip(mean + user_bias[test.users] + item_bias[test.items], test.scale.minimum, test.scale.maximum)

    def rmse(predicted: np.ndarray | float) -> float:
        return float(np.sqrt(np.mean((predicted - y) ** 2)))

    return {"test std": float(np.std(y)), "global mean": rmse(mean), "always mode": rmse(mode),
            "always mode acc": float(np.mean(y == mode)), "biases only": rmse(biased),
            "rounded biases": rmse(np.rint(biased)), "rounded biases acc": float(np.mean(np.rint(biased) == y))}


def _u1() -> tuple[Any, Any, Any, Any]:
    from deepmf.data import load
    from deepmf.data.splits import parse_split, validation_split

    data = load(data_root() / "ml-100k")
    split = parse_split("u1", data)[0]
    train, valid = validation_split(split.train, 0.05, seed=0)  # as tests/test_e2e_train.py carves it
    return data, split, train, valid


def u1_checks(seeds: range, only: set[str] | None) -> list[tuple[str, str, list[float]]]:
    """(check, metric, value per seed) of the end-to-end runs on ML-100K u1."""
    from deepmf.demo import DEMO_MODELS
    from deepmf.evaluation.metrics import accuracy, rmse
    from deepmf.experiment import run_experiment, train_config_for
    from deepmf.training.fit import train_model

    data, split, train, valid = _u1()
    tensors = split.test.to()
    low, high = split.test.scale.minimum, split.test.scale.maximum

    def trained(model: str, options: dict[str, Any], seed: int, **train_options: Any) -> Any:
        config = train_config_for(model, {"threads": 1, "seed": seed, **train_options})
        return train_model(model, data, train, valid, options, config, progress=False)

    def scores(run: Any, most_likely: bool = False) -> float:
        predicted = run.model.predict_in_batches(tensors.users, tensors.items, most_likely=most_likely)
        return predicted.clamp(low, high)

    rows: list[tuple[str, str, list[float]]] = []

    def wanted(name: str) -> bool:
        return only is None or name in only

    if wanted("mf"):
        for engine in ("torch", "auto"):
            rows.append((f"mf ({engine})", "rmse", [rmse(scores(trained("mf", {}, s, engine=engine)),
                                                         tensors.ratings) for s in seeds]))
    if wanted("deep"):
        rows.append(("deepmf 32, (64, 64)", "rmse", [rmse(scores(trained(
            "deepmf", {"factors": 32, "layers": (64, 64)}, s)), tensors.ratings) for s in seeds]))
    if wanted("cls"):
        runs = [trained("deepmf", {"head": "classification"}, s) for s in seeds]
        rows.append(("classification head", "accuracy",
                     [accuracy(scores(r, True), tensors.ratings) for r in runs]))
        rows.append(("classification head", "rmse (expected)", [rmse(scores(r), tensors.ratings) for r in runs]))
        rows.append(("classification head", "rmse (most likely)",
                     [rmse(scores(r, True), tensors.ratings) for r in runs]))
    if wanted("demo"):
        for name, options, overrides in DEMO_MODELS:
            rows.append((f"demo {name}", "rmse", [run_experiment(
                data, split, name, options, train_config_for(name, {**overrides, "seed": s}),
                progress=False).metrics["rmse"] for s in seeds]))
    if wanted("numba-u1"):  # tests/test_numba_engine.py: k=100, 20 epochs on all of u1.base, no validation
        from deepmf.training.validation import evaluate_rmse

        values = []
        for s in seeds:
            config = train_config_for("mf", {"engine": "numba", "epochs": 20, "patience": 0, "seed": s})
            run = train_model("mf", data, split.train, None, {"factors": 100}, config, progress=False)
            values.append(evaluate_rmse(run.model, tensors, low, high))
        rows.append(("mf k=100, numba, 20 epochs", "rmse", values))
    if wanted("bayes-u1"):
        rows.append(("bayes, 120 sweeps", "rmse", [run_experiment(
            data, split, "bayes", {"samples": 50}, train_config_for("bayes", {"epochs": 120, "seed": s}),
            valid_fraction=0.0, progress=False).metrics["rmse"] for s in seeds]))
    return rows


def lowrank_checks(seeds: range, only: set[str] | None) -> list[tuple[str, dict[str, float], list[float]]]:
    """(check, baselines, test RMSE per seed) of the low-rank tests (60 x 50, noise 0.1, random:0.2 seed 0)."""
    import deepmf
    from deepmf.data.splits import random_split
    from deepmf.data.synthetic import synthetic_ratings
    from deepmf.experiment import run_experiment, train_config_for

    def experiment(model: str, options: dict[str, Any], **train_options: Any) -> Callable[[Any, Any, int], float]:
        return lambda data, split, seed: run_experiment(
            data, split, model, options, train_config_for(model, {**train_options, "seed": seed}),
            progress=False).metrics["rmse"]

    cases: dict[str, tuple[dict[str, int], Callable[[Any, Any, int], float]]] = {
        "bayes": ({"rank": 2, "n_observed": 1500, "seed": 1},
                  experiment("bayes", {"rank": 4, "burn_in": 10, "date": False}, epochs=60)),
        "svdpp": ({"rank": 2, "n_observed": 2400, "seed": 2},
                  experiment("svdpp", {"factors": 2}, lr=0.02, l2=0.05, epochs=100, patience=0)),
        "autorec": ({"rank": 2, "n_observed": 1500, "seed": 3},
                    experiment("autorec", {"hidden": 50}, epochs=80, patience=10, l2=1.0, threads=1)),
        "fit": ({"rank": 3, "n_observed": 2400, "seed": 1},
                lambda data, split, seed: deepmf.fit(split.train, model="mf", factors=8, epochs=60, patience=0,
                                               engine="torch", threads=1, seed=seed)
                .evaluate(split.test).metrics["rmse"]),
    }
    rows = []
    for name, (shape, score) in cases.items():
        if only is not None and name not in only:
            continue
        data = synthetic_ratings("lowrank", n_users=60, n_items=50, noise=0.1, **shape)
        split = random_split(data, 0.2, seed=0)
        rows.append((name, baselines(split.train, split.test, 1.0, 1.0, 20), [score(data, split, s) for s in seeds]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, default=5, help="training seeds 0..N-1 (default 5)")
    parser.add_argument("--only", help="comma-separated: mf, deep, cls, demo, numba-u1, bayes-u1, bayes, svdpp, "
                                       "autorec, fit, baselines")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    seeds = range(args.seeds)
    print(machine_line())
    if only is None or "baselines" in only:
        _, split, _, _ = _u1()
        print("\nML-100K u1 baselines (fitted on u1.base, scored on u1.test)\n")
        print(markdown_table(["baseline", "value"], [(k, f"{v:.4f}") for k, v in
                                                     baselines(split.train, split.test).items()]))
    rows = u1_checks(seeds, only)
    if rows:
        print(f"\nML-100K u1, seeds 0..{args.seeds - 1}\n")
        print(markdown_table(["check", "metric", "min", "max", "per seed"], [
            (name, metric, f"{min(v):.4f}", f"{max(v):.4f}", " ".join(f"{x:.4f}" for x in v))
            for name, metric, v in rows]))
    low = lowrank_checks(seeds, only)
    if low:
        print(f"\nGenerated low-rank sets (noise floor 0.1), seeds 0..{args.seeds - 1}\n")
        print(markdown_table(["check", "test std", "biases only", "min", "max", "per seed"], [
            (name, f"{b['test std']:.3f}", f"{b['biases only']:.3f}", f"{min(v):.4f}", f"{max(v):.4f}",
             " ".join(f"{x:.4f}" for x in v)) for name, b, v in low]))


if __name__ == "__main__":
    main()
