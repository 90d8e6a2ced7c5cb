"""MF speed on ML-100K u1: deepmf's numba engine vs scikit-surprise SVD vs deepmf's torch engine vs the
tutorials' per-sample DataLoader loop, all measured in one run.

    DEEPMF_DATA=../shared/data python bench/speed_mf.py          # speed table + time-to-RMSE table
    DEEPMF_DATA=../shared/data python bench/speed_mf.py --tune   # how the numba defaults were chosen

Speed table: k=100, 20 epochs, lr 0.005, reg 0.02 (Surprise's defaults) for numba and Surprise, so the ratio
is like for like; extra rows show k=64 (the 20M ratings/s target), one numba thread, the numba defaults
tuned on validation data, the torch engine with its own MF defaults and the tutorial loop. Fit seconds are
the median of ``--repeats`` fits (numba compiled beforehand); ratings/s = training ratings x epochs / fit
seconds; test RMSE is on u1.test with predictions clipped to 1..5.

Time-to-RMSE table: each system trains epoch by epoch and is scored on u1.test after every epoch (scoring
time not counted); the row gives the training seconds and epochs until test RMSE first reaches ``--target``.

``--tune`` grids lr x reg for the numba engine (k=100, 20 epochs, 2 seeds) on a 5 % validation carve of
u1.base only; u1.test is printed beside it for reference but takes no part in the choice.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from _common import data_root, fmt_rate, load_average, machine_line, markdown_table
from deepmf.data import load
from deepmf.data.splits import parse_split, validation_split
from deepmf.models.registry import create_model, default_train_options
from deepmf.training.config import TrainConfig
from deepmf.training.trainer import Trainer, evaluate_rmse

SURPRISE_LR, SURPRISE_REG = 0.005, 0.02  # scikit-surprise SVD's defaults (lr_all, reg_all)
NUMBA_LR, NUMBA_REG = 0.015, 0.08  # chosen by --tune on validation data


def test_rmse(model: torch.nn.Module, test: Any) -> float:
    scale = test.scale
    return evaluate_rmse(model, test.to(), scale.minimum, scale.maximum)


def deepmf_fit(train: Any, factors: int, config: TrainConfig,
               on_epoch: Callable[[Any, Any], None] | None = None) -> tuple[torch.nn.Module, float, str]:
    """Train MF through the Trainer; return the model, training seconds (engine passes only), engine name."""
    torch.manual_seed(config.seed)
    model = create_model("mf", train, factors=factors)
    hook = None if on_epoch is None else (lambda record: on_epoch(model, record))
    result = Trainer(config, progress=False, on_epoch=hook).fit(model, train)
    return model, len(train) * result.epochs_run / result.ratings_per_second, result.engine


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


def torch_config(epochs: int) -> TrainConfig:
    """The torch engine with the MF model's own tuned defaults (early stopping off: fixed epochs)."""
    options = {**default_train_options("mf"), "epochs": epochs, "patience": 0, "engine": "torch"}
    return TrainConfig(**options)


def speed_table(data: Any, split: Any, epochs: int, repeats: int, tutorial_epochs: int) -> str:
    train, test = split.train, split.test
    n = len(train)
    deepmf_fit(train.subset(np.arange(100)), 8, numba_config(0.01, 0.0, 1))  # compile / load the numba cache

    def median_fit(factors: int, config: TrainConfig) -> tuple[float, float, str]:
        runs = [deepmf_fit(train, factors, config) for _ in range(repeats)]
        seconds = statistics.median(r[1] for r in runs)
        return seconds, test_rmse(runs[-1][0], test), runs[-1][2]

    trainset = surprise_trainset(train)
    surprise_runs = [surprise_fit(trainset, 100, epochs, SURPRISE_LR, SURPRISE_REG) for _ in range(repeats)]
    surprise_seconds = statistics.median(r[1] for r in surprise_runs)
    surprise_rate = n * epochs / surprise_seconds

    rows = []

    def add(system: str, factors: int, lr_reg: str, seconds: float, rmse: float) -> None:
        rate = n * epochs / seconds
        rows.append([system, factors, epochs, lr_reg, f"{seconds:.3f}", fmt_rate(rate), f"{rmse:.4f}",
                     f"{rate / surprise_rate:.1f}x"])

    same = f"{SURPRISE_LR} / {SURPRISE_REG}"
    seconds, rmse, engine = median_fit(100, numba_config(SURPRISE_LR, SURPRISE_REG, epochs))
    add(f"deepmf MF, {engine} engine (2 threads)", 100, same, seconds, rmse)
    surprise_test = surprise_rmse(surprise_runs[-1][0], test)
    add("scikit-surprise SVD (1 thread)", 100, same, surprise_seconds, surprise_test)
    seconds, rmse, engine = median_fit(100, numba_config(SURPRISE_LR, SURPRISE_REG, epochs, threads=1))
    add(f"deepmf MF, {engine} engine (1 thread)", 100, same, seconds, rmse)
    seconds, rmse, engine = median_fit(64, numba_config(SURPRISE_LR, SURPRISE_REG, epochs))
    add(f"deepmf MF, {engine} engine (2 threads)", 64, same, seconds, rmse)
    seconds, rmse, engine = median_fit(100, numba_config(NUMBA_LR, NUMBA_REG, epochs))
    add(f"deepmf MF, {engine} engine, tuned defaults", 100, f"{NUMBA_LR} / {NUMBA_REG}", seconds, rmse)
    config = torch_config(epochs)
    model, seconds, engine = deepmf_fit(train, 100, config)
    add(f"deepmf MF, {engine} engine ({config.optimizer}, batch {config.batch_size})", 100,
        f"{config.lr} / {config.l2}", seconds, test_rmse(model, test))
    rows.append(tutorial_row(data, split, tutorial_epochs, surprise_rate))
    return markdown_table(["system", "k", "epochs", "lr / reg", "fit s", "ratings/s", "test RMSE",
                           "ratings/s vs Surprise"], rows)


def tutorial_row(data: Any, split: Any, epochs: int, surprise_rate: float) -> list[Any]:
    """The tutorials' per-sample Dataset + DataLoader(batch 512) MF loop (bench/tutorial_loop.py)."""
    import tutorial_loop

    run = tutorial_loop.run("mf", data, split, epochs=epochs, factors=100)
    rate = len(split.train) * epochs / run["seconds"]
    return ["tutorial per-sample DataLoader loop", 100, epochs, run["settings"], f"{run['seconds']:.3f}",
            fmt_rate(rate), f"{run['test_rmse']:.4f}", f"{rate / surprise_rate:.2f}x"]


def time_to_target(split: Any, target: float, max_epochs: int) -> str:
    """Training seconds and epochs until u1 test RMSE first reaches ``target`` (scored after every epoch)."""
    train, test = split.train, split.test
    rows = []

    def deepmf_row(system: str, config: TrainConfig) -> None:
        reached: list[tuple[int, float]] = []
        elapsed = [0.0]

        def check(model: torch.nn.Module, record: Any) -> None:
            elapsed[0] += len(train) / record.ratings_per_second
            if not reached and test_rmse(model, test) <= target:
                reached.append((record.epoch, elapsed[0]))

        deepmf_fit(train, 100, config, on_epoch=check)
        rows.append(_target_row(system, config.lr, config.l2, reached))

    deepmf_row("deepmf MF, numba engine", numba_config(NUMBA_LR, NUMBA_REG, max_epochs))
    trainset = surprise_trainset(train)
    reached = []
    for epochs in range(1, max_epochs + 1):
        algo, seconds = surprise_fit(trainset, 100, epochs, NUMBA_LR, NUMBA_REG)
        if surprise_rmse(algo, test) <= target:
            reached.append((epochs, seconds))
            break
    rows.append(_target_row("scikit-surprise SVD", NUMBA_LR, NUMBA_REG, reached))
    deepmf_row("deepmf MF, torch engine", torch_config(max_epochs))
    return markdown_table(["system (k=100)", "lr / reg", f"epochs to RMSE {target}", "training s"], rows)


def _target_row(system: str, lr: float, reg: float, reached: list[tuple[int, float]]) -> list[Any]:
    if not reached:
        return [system, f"{lr} / {reg}", "not reached", ""]
    epoch, seconds = reached[0]
    return [system, f"{lr} / {reg}", epoch, f"{seconds:.3f}"]


def tune(split: Any, epochs: int) -> str:
    """Grid lr x reg for the numba engine on a validation carve of u1.base (u1.test shown, not used)."""
    fit_part, valid = validation_split(split.train, 0.05, seed=0)
    rows = []
    for lr in (0.005, 0.01, 0.015, 0.02):
        for reg in (0.02, 0.05, 0.08, 0.12):
            val, test = [], []
            for seed in (0, 1):
                model, _, _ = deepmf_fit(fit_part, 100, numba_config(lr, reg, epochs, seed=seed))
                val.append(test_rmse(model, valid))
                model, _, _ = deepmf_fit(split.train, 100, numba_config(lr, reg, epochs, seed=seed))
                test.append(test_rmse(model, split.test))
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
        print(time_to_target(split, args.target, args.max_epochs))
    print(f"load average after the run: {load_average():.2f}")


if __name__ == "__main__":
    main()
