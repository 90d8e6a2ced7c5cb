"""MF speed on ML-100K u1: deepmf's numba engine vs scikit-surprise SVD vs deepmf's torch engine vs the
tutorials' per-sample DataLoader loop, all measured in one run.

    DEEPMF_DATA=../shared/data python bench/speed_mf.py          # speed table + time-to-RMSE table
    DEEPMF_DATA=../shared/data python bench/speed_mf.py --tune   # how the numba defaults were chosen

Speed table: k=100, 20 epochs, lr 0.005, reg 0.02 (Surprise's defaults) for numba and Surprise, so the ratio
is like for like; extra rows show k=64 (the 20M ratings/s target), one numba thread, MF's shipped defaults
(registry; lr/reg tuned on validation data), the torch engine with the same defaults and the tutorial loop.
Fit seconds are the median of ``--repeats`` fits (numba compiled beforehand); ratings/s = training ratings x
epochs / fit seconds; test RMSE is on u1.test with predictions clipped to 1..5.

Time-to-RMSE table: each system trains epoch by epoch and is scored on u1.test after every epoch (scoring
time not counted); the row gives the training seconds and epochs until test RMSE first reaches ``--target``.
Surprise cannot pause between epochs, so it is refitted with 1, 2, ... epochs and the first fit that reaches
the target is timed.

``--tune`` grids lr x reg for the numba engine (k=100, 20 epochs, 2 seeds) on a 5 % validation carve of
u1.base only; u1.test is printed beside it for reference but takes no part in the choice.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np

import tutorial_loop
from _common import (
    data_root,
    first_reaching,
    fit_with_curve,
    fmt_rate,
    load_average,
    machine_line,
    markdown_table,
)
from deepmf.data import load
from deepmf.data.splits import parse_split, validation_split
from deepmf.models.registry import default_train_options
from deepmf.training.config import TrainConfig

SURPRISE_LR, SURPRISE_REG = 0.005, 0.02  # scikit-surprise SVD's defaults (lr_all, reg_all)
K = 100  # Surprise's default number of factors


def surprise_trainset(train: Any) -> Any:
    from surprise import Dataset, Reader

    frame = train.to_frame()[["user", "item", "rating"]]
    scale = train.scale
    reader = Reader(rating_scale=(scale.minimum, scale.maximum))
    return Dataset.load_from_df(frame, reader).build_full_trainset()


def surprise_fit(trainset: Any, factors: int, epochs: int, lr: float, reg: float,
                 seed: int = 0) -> tuple[Any, float]:
    from surprise import SVD

    algo = SVD(n_factors=factors, n_epochs=epochs, lr_all=lr, reg_all=reg, random_state=seed)
    started = time.perf_counter()
    algo.fit(trainset)
    return algo, time.perf_counter() - started


def surprise_rmse(algo: Any, test: Any) -> float:
    frame = test.to_frame()
    predictions = algo.test(list(zip(frame["user"], frame["item"], frame["rating"], strict=True)))
    errors = np.array([p.est - p.r_ui for p in predictions])
    return float(np.sqrt(np.mean(errors**2)))


def numba_config(lr: float, reg: float, epochs: int, threads: int | None = None,
                 seed: int = 0) -> TrainConfig:
    return TrainConfig(optimizer="sgd", engine="numba", lr=lr, l2=reg, epochs=epochs, threads=threads,
                       seed=seed)


def default_config(engine: str, epochs: int) -> TrainConfig:
    """MF's tuned defaults (deepmf.models.registry) on ``engine``, for a fixed number of epochs."""
    return TrainConfig(**{**default_train_options("mf"), "epochs": epochs, "patience": 0, "engine": engine})


def speed_table(data: Any, split: Any, epochs: int, repeats: int, tutorial_epochs: int) -> str:
    train, test = split.train, split.test
    n = len(train)
    fit_with_curve("mf", train.subset(np.arange(100)), test, {"factors": 8}, numba_config(0.01, 0.0, 1))  # JIT

    def median_fit(factors: int, config: TrainConfig) -> tuple[float, float, str]:
        runs = [fit_with_curve("mf", train, test, {"factors": factors}, config) for _ in range(repeats)]
        return statistics.median(r["seconds"] for r in runs), runs[-1]["test_rmse"], runs[-1]["engine"]

    trainset = surprise_trainset(train)
    surprise_runs = [surprise_fit(trainset, K, epochs, SURPRISE_LR, SURPRISE_REG) for _ in range(repeats)]
    surprise_seconds = statistics.median(r[1] for r in surprise_runs)
    surprise_rate = n * epochs / surprise_seconds
    rows = []

    def add(system: str, factors: int, lr_reg: str, seconds: float, rmse: float, n_epochs: int = epochs) -> None:
        rate = n * n_epochs / seconds
        rows.append([system, factors, n_epochs, lr_reg, f"{seconds:.3f}", fmt_rate(rate), f"{rmse:.4f}",
                     f"{rate / surprise_rate:.2f}x"])

    same = f"{SURPRISE_LR} / {SURPRISE_REG}"
    seconds, rmse, engine = median_fit(K, numba_config(SURPRISE_LR, SURPRISE_REG, epochs))
    add(f"deepmf MF, {engine} engine, 2 threads", K, same, seconds, rmse)
    surprise_test = surprise_rmse(surprise_runs[-1][0], test)
    add("scikit-surprise SVD (Cython, 1 thread)", K, same, surprise_seconds, surprise_test)
    seconds, rmse, engine = median_fit(K, numba_config(SURPRISE_LR, SURPRISE_REG, epochs, threads=1))
    add(f"deepmf MF, {engine} engine, 1 thread", K, same, seconds, rmse)
    seconds, rmse, engine = median_fit(64, numba_config(SURPRISE_LR, SURPRISE_REG, epochs))
    add(f"deepmf MF, {engine} engine, 2 threads", 64, same, seconds, rmse)
    # torch's OpenMP threads spin while idle, so on a busy 2-core machine 1 thread can beat 2: show both.
    for engine_name, threads in (("numba", None), ("torch", 1), ("torch", 2)):
        config = default_config(engine_name, epochs)
        config.threads = threads
        seconds, rmse, engine = median_fit(K, config)
        how = "SGD" if engine == "numba" else f"{config.optimizer}, batch {config.batch_size}, {threads} thread(s)"
        add(f"deepmf MF, {engine} engine, tuned defaults ({how})", K, f"{config.lr} / {config.l2}", seconds,
            rmse)
    run = tutorial_loop.run("mf", data, split, epochs=tutorial_epochs, factors=K)
    add("tutorial per-sample DataLoader loop (Adam, batch 512)", K, run["settings"].split(",")[0], run["seconds"],
        run["test_rmse"], tutorial_epochs)
    return markdown_table(["system", "k", "epochs", "lr / reg", "fit s", "ratings/s", "test RMSE",
                           "ratings/s vs Surprise"], rows)


def time_to_target(data: Any, split: Any, target: float, max_epochs: int, tutorial_epochs: int) -> str:
    """Training seconds and epochs until u1 test RMSE first reaches ``target`` (scored after every epoch)."""
    train, test = split.train, split.test
    rows = []
    for engine in ("numba", "torch"):
        config = default_config(engine, max_epochs)
        run = fit_with_curve("mf", train, test, {"factors": K}, config, curve=True)
        rows.append(_target_row(f"deepmf MF, {engine} engine", f"{config.lr} / {config.l2}",
                                first_reaching(run["curve"], target)))
    lr, reg = default_config("numba", 1).lr, default_config("numba", 1).l2
    trainset = surprise_trainset(train)
    reached = None
    for epochs in range(1, max_epochs + 1):  # Surprise cannot pause: refit with one more epoch each time
        algo, seconds = surprise_fit(trainset, K, epochs, lr, reg)
        if surprise_rmse(algo, test) <= target:
            reached = (epochs, seconds)
            break
    rows.append(_target_row("scikit-surprise SVD", f"{lr} / {reg}", reached))
    run = tutorial_loop.run("mf", data, split, epochs=tutorial_epochs, factors=K)
    per_epoch = run["seconds"] / tutorial_epochs
    curve = [(e + 1, per_epoch * (e + 1), h["test_rmse"]) for e, h in enumerate(run["history"])]
    rows.append(_target_row(f"tutorial loop ({tutorial_epochs} epochs tried)", run["settings"].split(",")[0],
                            first_reaching(curve, target)))
    return markdown_table([f"system (k={K}, up to {max_epochs} epochs)", "lr / reg",
                           f"epochs to test RMSE {target}", "training s"], rows)


def _target_row(system: str, settings: str, reached: tuple[int, float] | None) -> list[Any]:
    if reached is None:
        return [system, settings, "not reached", ""]
    return [system, settings, reached[0], f"{reached[1]:.3f}"]


def tune(split: Any, epochs: int) -> str:
    """Grid lr x reg for the numba engine on a validation carve of u1.base (u1.test shown, not used)."""
    fit_part, valid = validation_split(split.train, 0.05, seed=0)
    rows = []
    for lr in (0.005, 0.01, 0.015, 0.02):
        for reg in (0.02, 0.05, 0.08, 0.1, 0.12):
            val, test = [], []
            for seed in (0, 1):
                val.append(fit_with_curve("mf", fit_part, valid, {"factors": K},
                                          numba_config(lr, reg, epochs, seed=seed))["test_rmse"])
                test.append(fit_with_curve("mf", split.train, split.test, {"factors": K},
                                           numba_config(lr, reg, epochs, seed=seed))["test_rmse"])
            rows.append([lr, reg, f"{np.mean(val):.4f}", f"{np.mean(test):.4f}"])
    rows.sort(key=lambda row: row[2])
    return markdown_table(["lr", "reg", "validation RMSE (chooses)", "u1.test RMSE (reference)"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5, help="fits per timed row (median reported)")
    parser.add_argument("--tutorial-epochs", type=int, default=2, help="epochs of the slow tutorial loop")
    parser.add_argument("--target", type=float, default=0.93, help="test RMSE for the time-to-RMSE table")
    parser.add_argument("--max-epochs", type=int, default=60, help="give up on the target after this many")
    parser.add_argument("--tune", action="store_true", help="print the lr x reg grid instead")
    args = parser.parse_args()

    data = load(data_root() / "ml-100k")
    split = parse_split("u1", data)[0]
    print(machine_line())
    if args.tune:
        print(tune(split, args.epochs))
    else:
        print(speed_table(data, split, args.epochs, args.repeats, args.tutorial_epochs))
        print()
        print(time_to_target(data, split, args.target, args.max_epochs, args.tutorial_epochs))
    print(f"load average after the run: {load_average():.2f}")


if __name__ == "__main__":
    main()
