"""Training throughput on ML-100K u1: deepmf's trainer vs the tutorials' per-sample DataLoader loop, one run.

    DEEPMF_DATA=../shared/data python bench/train_throughput.py --threads 1
    DEEPMF_DATA=../shared/data python bench/train_throughput.py --threads 2

Rows come in pairs: the tutorial loop (bench/tutorial_loop.py: per-sample ``Dataset.__getitem__``,
``DataLoader`` batch 512, ``loss.item()`` per step) and deepmf's torch engine training the *same* model with
the same optimizer and batch size, so the ratio is the loop alone. Then deepmf's tuned defaults (large
batches, per-batch L2, early stopping on a 5 % validation carve of u1.base) for MF (torch and numba engines)
and deep MF K=32, 64-64. ratings/s = training ratings x epochs / seconds of the training passes (scoring
excluded); test RMSE is on u1.test after training (deepmf clips predictions to 1..5, the tutorial does not).
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

import tutorial_loop
from _common import data_root, fmt_rate, machine_line, markdown_table
from deepmf.data import load
from deepmf.data.splits import parse_split, validation_split
from deepmf.evaluation.metrics import rmse
from deepmf.experiment import train_config_for
from deepmf.training.config import TrainConfig
from deepmf.training.fit import train_model

# Tutorial 003's models and optimizer.
TUTORIAL_MODELS = {
    "mf": {"factors": 10, "bias": False, "init_std": 1.0},
    "deepmf": {"factors": 10, "layers": (10, 5), "bias": False, "dropout": 0.0, "init_std": 1.0},
}


def _test_rmse(trained: Any, test: Any) -> float:
    tensors = test.to()
    predicted = trained.model.predict_in_batches(tensors.users, tensors.items)
    return rmse(predicted.clamp(test.scale.minimum, test.scale.maximum), tensors.ratings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of each like-for-like pair")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load(data_root() / "ml-100k")
    split = parse_split("u1", data)[0]
    rows: list[list[Any]] = []
    for model, options in TUTORIAL_MODELS.items():
        tutorial = tutorial_loop.run(model, data, split, epochs=args.epochs)
        config = TrainConfig(optimizer="adam", lr=1e-3, weight_decay=1e-5, batch_size=512, epochs=args.epochs,
                             threads=args.threads, engine="torch", device="cpu")
        ours = train_model(model, data, split.train, None, options, config, progress=False)
        rate = ours.result.ratings_per_second
        settings = f"K=10{', 10-5' if model == 'deepmf' else ''}, Adam, batch 512, {args.epochs} epochs"
        rows.append(["tutorial per-sample DataLoader", model, settings,
                     fmt_rate(tutorial["ratings_per_second"]), f"{tutorial['test_rmse']:.3f}", "1.0x"])
        rows.append(["deepmf torch engine, same model", model, settings, fmt_rate(rate),
                     f"{_test_rmse(ours, split.test):.3f}", f"{rate / tutorial['ratings_per_second']:.0f}x"])
    train, valid = validation_split(split.train, 0.05, seed=0)
    for model, engine, options in (("mf", "torch", {}), ("mf", "numba", {}),
                                   ("deepmf", "torch", {"factors": 32, "layers": (64, 64)})):
        config = train_config_for(model, {"threads": args.threads, "engine": engine, "device": "cpu"})
        trained = train_model(model, data, train, valid, options, config, progress=False)
        result = trained.result
        model_config = trained.model.config
        shape = f"K={model_config.factors}"
        if model == "deepmf":
            shape += f", {'-'.join(map(str, model_config.layers))}, dropout {model_config.dropout}"
        settings = (f"defaults: {shape}, {config.optimizer} batch {config.batch_size}, l2 {config.l2}, "
                    f"{result.epochs_run} epochs (best {result.best_epoch})")
        rows.append([f"deepmf {engine} engine, defaults", model, settings,
                     fmt_rate(result.ratings_per_second), f"{_test_rmse(trained, split.test):.3f}", ""])
    print(f"Machine: {machine_line()}; torch threads {args.threads}\n")
    print(markdown_table(["system", "model", "settings", "ratings/s", "u1 test RMSE", "vs tutorial"], rows))


if __name__ == "__main__":
    main()
