"""Implicit feedback: every deepmf implicit model next to the ``implicit`` library's ALS and BPR, and popularity.

    DEEPMF_DATA=../shared/data python bench/implicit.py accuracy --data ml-100k --trials 10
    DEEPMF_DATA=../shared/data python bench/implicit.py accuracy --data ml-latest-small --trials 10
    DEEPMF_DATA=../shared/data python bench/implicit.py speed --data ml-100k
    python bench/implicit.py table --data ml-100k     # the saved rows (bench/out/) as one table

Protocol (both data sets): ratings >= 4 are the interactions (``--feedback implicit --positive 4``); each user's
interactions are split 80/20 at random (``user:0.2``, seed 0); a model ranks, for each test user, every item
with a training interaction minus the user's own training items (full ranking, no sampled negatives), and
NDCG@10, Recall@20 (and MAP@10, hit rate@10, coverage@10) are averaged over users with a test interaction.
Every system is scored by the same code (``deepmf.evaluation.topk.HeldOutRanking``) on the same test part,
which is read once per system, after tuning.

Tuning is the same for everyone: Optuna's TPE sampler (seed 0), the same number of trials, each trial trained
on the training part minus 20 % of each user's training interactions and scored by NDCG@10 on those 20 %
(``deepmf.tune.tune`` for deepmf's models, the same carve and ``HeldOutRanking`` for the peers). The best
configuration is then refitted on the whole training part: deepmf's models exactly as ``deepmf train
--config`` would (models with early stopping carve their default 5 % of each user's interactions for it);
``implicit``'s with the tuned iteration count. Fit seconds are the wall time of that final fit (for deepmf
including engine setup and its per-epoch validation, if any), on one thread each (``threads=1``,
``num_threads=1``), in a process that has already run the model's kernels once (compilation excluded).

``speed``: deepmf's iALS against ``implicit``'s CPU ALS at equal factors (64), iterations (15), threads (1 and
2) and CG steps (3), each with its regularization picked on the validation carve from a 12-point grid; best and
median of 5 fits (the two alternate), and EASE's fit. Also the first fit in a fresh process, which for deepmf
includes loading its compiled kernels from numba's cache.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import scipy.sparse as sp
import torch

from _common import BENCH_DIR, data_root, machine_line, markdown_table, run_child
from deepmf.data import load
from deepmf.data.ratings import Ratings
from deepmf.data.splits import Split, parse_split, validation_split
from deepmf.evaluation.topk import HeldOutRanking
from deepmf.experiment import carve_validation, train_config_for
from deepmf.training.config import TrainConfig
from deepmf.training.fit import train_model
from deepmf.tune import tune

DEEPMF_MODELS = ("pop", "ease", "ials", "bpr", "neumf", "deepmf")
PEERS = ("implicit-als", "implicit-bpr")
VALID_FRACTION = 0.2
# Deep models are capped at 20 epochs (early stopping usually ends them sooner) to keep the search affordable.
DEEP_TRAIN = {"epochs": 20}
ONE_THREAD = {"threads": 1}
TRAIN_KEYS = frozenset(f.name for f in fields(TrainConfig))
OUT = BENCH_DIR / "out"


class Factors(torch.nn.Module):
    """A peer's user and item factors, scored like any deepmf model (for ``HeldOutRanking``)."""

    def __init__(self, users: np.ndarray, items: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("users", torch.from_numpy(np.ascontiguousarray(users, dtype=np.float32)))
        self.register_buffer("items", torch.from_numpy(np.ascontiguousarray(items, dtype=np.float32)))

    def score_all_items(self, users: torch.Tensor) -> torch.Tensor:
        return self.users[users] @ self.items.T


def interactions(data: Ratings, part: Ratings) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(part), dtype=np.float32), (part.users, part.items)),
                         shape=(data.n_users, data.n_items))


def _peer_classes() -> tuple[Any, Any]:
    """The ``implicit`` library's ALS and BPR classes. This script's own name is ``implicit``: the library is
    imported with bench/ off ``sys.path``, or Python would find this file instead."""
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != BENCH_DIR]
    try:
        from implicit.als import AlternatingLeastSquares
        from implicit.bpr import BayesianPersonalizedRanking
    finally:
        sys.path[:] = saved
    return AlternatingLeastSquares, BayesianPersonalizedRanking


def implicit_model(name: str, params: dict[str, Any], threads: int) -> Any:
    AlternatingLeastSquares, BayesianPersonalizedRanking = _peer_classes()

    if name == "implicit-als":
        return AlternatingLeastSquares(factors=params["factors"], regularization=params["regularization"],
                                       alpha=params["alpha"], iterations=params.get("iterations", 15),
                                       num_threads=threads, random_state=0, calculate_training_loss=False)
    return BayesianPersonalizedRanking(factors=params["factors"], learning_rate=params["learning_rate"],
                                       regularization=params["regularization"], iterations=params["iterations"],
                                       num_threads=threads, random_state=0)


def fit_peer(name: str, params: dict[str, Any], data: Ratings, part: Ratings, threads: int = 1) -> tuple[Any, float]:
    model = implicit_model(name, params, threads)
    matrix = interactions(data, part)
    start = time.perf_counter()
    model.fit(matrix, show_progress=False)
    seconds = time.perf_counter() - start
    return Factors(model.user_factors, model.item_factors), seconds


def peer_space(name: str, trial: optuna.Trial) -> dict[str, Any]:
    if name == "implicit-als":
        return {"factors": trial.suggest_int("factors", 16, 256, log=True),
                "regularization": trial.suggest_float("regularization", 1e-3, 100.0, log=True),
                "alpha": trial.suggest_float("alpha", 0.1, 50.0, log=True)}
    return {"factors": trial.suggest_int("factors", 16, 256, log=True),
            "learning_rate": trial.suggest_float("learning_rate", 1e-3, 0.3, log=True),
            "regularization": trial.suggest_float("regularization", 1e-4, 0.1, log=True),
            "iterations": trial.suggest_int("iterations", 20, 300, log=True)}


def tune_peer(name: str, data: Ratings, split: Split, trials: int) -> dict[str, Any]:
    fit_part, valid = validation_split(split.train, VALID_FRACTION, seed=0)
    ranking = HeldOutRanking(fit_part, valid, 10)

    def objective(trial: optuna.Trial) -> float:
        model, _ = fit_peer(name, peer_space(name, trial), data, fit_part)
        return ranking(model)["ndcg"]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=trials)
    return {"params": study.best_params, "val_ndcg": study.best_value}


def test_metrics(model: Any, split: Split) -> dict[str, float]:
    at10 = HeldOutRanking(split.train, split.test, 10)(model)
    at20 = HeldOutRanking(split.train, split.test, 20)(model)
    return {"ndcg@10": at10["ndcg"], "recall@10": at10["recall"], "map@10": at10["map"],
            "hit_rate@10": at10["hit_rate"], "coverage@10": at10["coverage"], "ndcg@20": at20["ndcg"],
            "recall@20": at20["recall"], "n_users": at10["n_users"]}


def fit_deepmf(name: str, data: Ratings, split: Split, model_options: dict[str, Any],
               train_options: dict[str, Any]) -> tuple[Any, float, dict[str, Any]]:
    """The final fit, as ``deepmf train --config`` does it (default validation carve when it stops early)."""
    config = train_config_for(name, {**train_options, **ONE_THREAD}, "implicit")
    fit_part, valid = carve_validation(split.train, None, config)
    start = time.perf_counter()
    trained = train_model(name, data, fit_part, valid, model_options, config, progress=False)
    seconds = time.perf_counter() - start
    return trained.model, seconds, {"epochs_run": trained.result.epochs_run, "best_epoch": trained.result.best_epoch}


def accuracy(data_name: str, trials: int, models: list[str]) -> dict[str, Any]:
    data = load(data_root() / data_name, feedback="implicit", positive=4)
    split = parse_split("user:0.2", data, seed=0)[0]
    rows: dict[str, Any] = {}
    for name in models:
        started = time.perf_counter()
        if name in PEERS:
            tuned = tune_peer(name, data, split, trials)
            fit_peer(name, tuned["params"], data, split.train)  # warm-up, as deepmf's kernels are warm
            model, seconds = fit_peer(name, tuned["params"], data, split.train)
            record = {"params": tuned["params"], "val_ndcg": tuned["val_ndcg"]}
        else:
            if name == "pop":
                model_options, train_options, record = {}, {}, {}
            else:
                fixed = {**ONE_THREAD, **(DEEP_TRAIN if name in ("neumf", "deepmf") else {})}
                result = tune(data, [split], name, trials, valid_fraction=VALID_FRACTION, seed=0, fixed_train=fixed)
                model_options, train_options = result.model_options, result.train_options
                record = {"params": {**model_options, **train_options}, "val_ndcg": result.best_score}
            fit_deepmf(name, data, split, model_options, train_options)  # warm-up: kernels compiled/loaded
            model, seconds, extra = fit_deepmf(name, data, split, model_options, train_options)
            record.update(extra)
        record.update(fit_seconds=seconds, tune_seconds=time.perf_counter() - started, **test_metrics(model, split))
        rows[name] = record
        print(json.dumps({name: record}), flush=True)
    return {"data": data_name, "split": split.summary(), "trials": trials, "machine": machine_line(),
            "models": rows}


def retime(result: dict[str, Any]) -> dict[str, Any]:
    """Time every saved row's final fit again, one after the other in this process, so the fit seconds of
    all systems are taken under the same load (tuning runs spread over hours of a shared machine)."""
    data = load(data_root() / result["data"], feedback="implicit", positive=4)
    split = parse_split("user:0.2", data, seed=0)[0]
    for name, row in result["models"].items():
        params = dict(row.get("params", {}))
        if name in PEERS:
            fit_peer(name, params, data, split.train)
            model, row["fit_seconds"] = fit_peer(name, params, data, split.train)
        else:
            model_options = {k: v for k, v in params.items() if k not in TRAIN_KEYS}
            train_options = {k: v for k, v in params.items() if k in TRAIN_KEYS}
            fit_deepmf(name, data, split, model_options, train_options)
            model, row["fit_seconds"], _ = fit_deepmf(name, data, split, model_options, train_options)
        row["ndcg@10 (retimed fit)"] = test_metrics(model, split)["ndcg@10"]
    result["retimed"] = machine_line()
    return result


def accuracy_table(result: dict[str, Any]) -> str:
    header = ["system", "NDCG@10", "Recall@20", "MAP@10", "hit@10", "cov@10", "fit s", "validation NDCG@10",
              "tuned"]
    rows = []
    for name, r in sorted(result["models"].items(), key=lambda item: -item[1]["ndcg@10"]):
        label = name if name in PEERS else f"deepmf {name}"
        params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                           for k, v in r.get("params", {}).items() if k != "threads")
        val = f"{r['val_ndcg']:.4f}" if "val_ndcg" in r else "–"
        rows.append([label, f"{r['ndcg@10']:.4f}", f"{r['recall@20']:.4f}", f"{r['map@10']:.4f}",
                     f"{r['hit_rate@10']:.3f}", f"{r['coverage@10']:.3f}", f"{r['fit_seconds']:.2f}", val,
                     params or "–"])
    return markdown_table(header, rows)


# ---- speed ---------------------------------------------------------------------------------------------------
SPEED_FACTORS, SPEED_ITERATIONS = 64, 15


def _speed_setup(data_name: str = "ml-100k") -> tuple[Ratings, Split]:
    data = load(data_root() / data_name, feedback="implicit", positive=4)
    return data, parse_split("user:0.2", data, seed=0)[0]


def _ials(data: Ratings, part: Ratings, options: dict[str, Any], threads: int) -> tuple[Any, float]:
    config = train_config_for("ials", {"epochs": SPEED_ITERATIONS, "threads": threads})
    start = time.perf_counter()
    trained = train_model("ials", data, part, None, {"factors": SPEED_FACTORS, **options}, config, progress=False)
    return trained.model, time.perf_counter() - start


def _als(data: Ratings, part: Ratings, options: dict[str, Any], threads: int) -> tuple[Any, float]:
    return fit_peer("implicit-als", {"factors": SPEED_FACTORS, "iterations": SPEED_ITERATIONS, **options}, data,
                    part, threads)


def speed(data_name: str, repeats: int = 5) -> dict[str, Any]:
    data, split = _speed_setup(data_name)
    fit_part, valid = validation_split(split.train, VALID_FRACTION, seed=0)
    ranking = HeldOutRanking(fit_part, valid, 10)
    grids = {
        "deepmf ials": (_ials, [{"reg": reg, "alpha0": a0} for reg in (0.003, 0.01, 0.03, 0.1)
                                for a0 in (0.03, 0.1, 0.3)]),
        "implicit ALS": (_als, [{"regularization": reg, "alpha": alpha} for reg in (1.0, 3.0, 10.0, 30.0)
                                for alpha in (0.3, 1.0, 3.0)]),
    }
    chosen = {}
    for label, (fit, grid) in grids.items():
        scored = [(ranking(fit(data, fit_part, options, 1)[0])["ndcg"], options) for options in grid]
        chosen[label] = max(scored, key=lambda pair: pair[0])
    rows = {}
    for threads in (1, 2):
        times: dict[str, list[float]] = {label: [] for label in grids}
        models = {}
        for _ in range(repeats):  # the two systems alternate, so a change of load hits both alike
            for label, (fit, _) in grids.items():
                models[label], seconds = fit(data, split.train, chosen[label][1], threads)
                times[label].append(seconds)
        for label in grids:
            val_ndcg, options = chosen[label]
            rows[f"{label} threads={threads}"] = {"options": options, "val_ndcg": val_ndcg,
                                                  "best_seconds": min(times[label]),
                                                  "median_seconds": float(np.median(times[label])),
                                                  **test_metrics(models[label], split)}
            print(json.dumps({label: rows[f"{label} threads={threads}"]}), flush=True)
    ease_times = []
    for _ in range(repeats):
        start = time.perf_counter()
        train_model("ease", data, split.train, None, {}, train_config_for("ease", ONE_THREAD), progress=False)
        ease_times.append(time.perf_counter() - start)
    rows["deepmf ease threads=1"] = {"best_seconds": min(ease_times), "median_seconds": float(np.median(ease_times))}
    first = {name: run_child(["bench/implicit.py", "first-fit", name, "--data", data_name])
             for name in ("ials", "ease", "implicit-als")}
    return {"data": data_name, "machine": machine_line(), "rows": rows, "first_fit": first}


def first_fit(name: str, data_name: str) -> dict[str, Any]:
    """One fit in this fresh process (deepmf: includes loading the compiled kernels from numba's cache)."""
    data, split = _speed_setup(data_name)
    if name == "implicit-als":
        _, seconds = _als(data, split.train, {"regularization": 10.0, "alpha": 1.0}, 1)
    elif name == "ials":
        _, seconds = _ials(data, split.train, {}, 1)
    else:
        start = time.perf_counter()
        train_model("ease", data, split.train, None, {}, train_config_for("ease", ONE_THREAD), progress=False)
        seconds = time.perf_counter() - start
    return {"model": name, "seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("accuracy", "speed", "first-fit", "table", "retime"))
    parser.add_argument("name", nargs="?", help="first-fit: ials, ease or implicit-als")
    parser.add_argument("--data", default="ml-100k")
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--models", default=",".join((*DEEPMF_MODELS, *PEERS)))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    if args.mode == "first-fit":
        print(json.dumps(first_fit(args.name, args.data)))
        return
    OUT.mkdir(exist_ok=True)
    if args.mode in ("table", "retime"):  # the saved rows of earlier runs (one run per model group)
        path = OUT / f"implicit_{args.data}.json"
        saved = json.loads(path.read_text())
        if args.mode == "retime":
            saved = retime(saved)
            path.write_text(json.dumps(saved, indent=1))
            print(saved["retimed"])
        print(accuracy_table(saved))
        return
    if args.mode == "speed":
        result = speed(args.data)
        (OUT / f"implicit_speed_{args.data}.json").write_text(json.dumps(result, indent=1))
        print(result["machine"])
        print(markdown_table(["system", "threads", "best s", "median s", "NDCG@10 (test)", "options"], [
            [name.rsplit(" threads=", 1)[0], name.rsplit("=", 1)[1], f"{r['best_seconds']:.3f}",
             f"{r['median_seconds']:.3f}", f"{r['ndcg@10']:.4f}" if "ndcg@10" in r else "–",
             json.dumps(r.get("options", {}))] for name, r in result["rows"].items()]))
        print("first fit in a fresh process:", json.dumps(result["first_fit"]))
        return
    result = accuracy(args.data, args.trials, [m.strip() for m in args.models.split(",") if m.strip()])
    path = OUT / f"implicit_{args.data}.json"
    if path.exists():  # a run of some models updates the saved rows of the others
        saved = json.loads(path.read_text())
        result["models"] = {**saved.get("models", {}), **result["models"]}
    path.write_text(json.dumps(result, indent=1))
    print(result["machine"])
    print(accuracy_table(result))


if __name__ == "__main__":
    main()
