"""Deep MF speed on ML-100K u1 (K=32, layers 64,64): deepmf's torch engine vs the tutorials' per-sample loop.

    DEEPMF_DATA=../shared/data python bench/speed_deep.py             # speed + time-to-RMSE tables
    DEEPMF_DATA=../shared/data python bench/speed_deep.py --profile   # where one epoch's time goes

Speed table: every row trains the same architecture for the same number of epochs (``--epochs``, no early
stopping). deepmf rows use DeepMF's shipped defaults (deepmf.models.registry: Adam lr 0.01, batch 4096, L2 on
the rows used, no dropout) through the Trainer, with 1 and 2 torch threads, with and without the bfloat16
forward pass (``DEEPMF_PRECISION``); the tutorial row is bench/tutorial_loop.py (Adam lr 1e-3, batch 512,
per-sample ``Dataset.__getitem__``). Seconds count training passes only; test RMSE is on u1.test, clipped.

Time-to-RMSE table: the same runs scored on u1.test after every epoch; training seconds until the test RMSE
first reaches each ``--targets`` value.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import torch

import tutorial_loop
from _common import data_root, first_reaching, fit_with_curve, fmt_rate, load_average, machine_line, markdown_table
from deepmf.data import load
from deepmf.data.splits import parse_split
from deepmf.models.registry import default_train_options
from deepmf.training.config import TrainConfig

ARCHITECTURE = {"factors": 32, "layers": (64, 64)}


def deepmf_config(epochs: int, threads: int, device: str) -> TrainConfig:
    return TrainConfig(**{**default_train_options("deepmf"), "epochs": epochs, "patience": 0, "threads": threads,
                          "device": device})


def run_deepmf(split: Any, epochs: int, threads: int, precision: str, device: str) -> dict[str, Any]:
    """One deepmf run with ``DEEPMF_PRECISION=precision`` (read when the engine is built)."""
    previous = os.environ.get("DEEPMF_PRECISION")
    os.environ["DEEPMF_PRECISION"] = precision
    try:
        return fit_with_curve("deepmf", split.train, split.test, ARCHITECTURE,
                              deepmf_config(epochs, threads, device), curve=True)
    finally:
        if previous is None:
            del os.environ["DEEPMF_PRECISION"]
        else:
            os.environ["DEEPMF_PRECISION"] = previous


def tables(data: Any, split: Any, epochs: int, targets: list[float], device: str) -> str:
    n = len(split.train)
    tutorial = tutorial_loop.run("deepmf", data, split, epochs=epochs, factors=ARCHITECTURE["factors"],
                                 hidden=ARCHITECTURE["layers"])
    tutorial_rate = tutorial["ratings_per_second"]
    per_epoch = tutorial["seconds"] / epochs
    runs = [("tutorial per-sample DataLoader loop", tutorial["settings"],
             [(e + 1, per_epoch * (e + 1), h["test_rmse"]) for e, h in enumerate(tutorial["history"])],
             tutorial["seconds"], tutorial["test_rmse"])]
    precisions = ("auto", "fp32") if device == "cpu" else ("auto",)
    for threads in (1, 2):
        for precision in precisions:
            run = run_deepmf(split, epochs, threads, precision, device)
            label = f"deepmf DeepMF, {run['engine']} engine, {threads} thread{'s' if threads > 1 else ''}"
            runs.append((label, f"precision {precision}", run["curve"], run["seconds"], run["test_rmse"]))
    speed_rows, target_rows = [], []
    for label, settings, curve, seconds, rmse in runs:
        rate = n * epochs / seconds
        speed_rows.append([label, settings, epochs, f"{seconds:.2f}", fmt_rate(rate), f"{rmse:.4f}",
                           f"{rate / tutorial_rate:.1f}x"])
        reached = [first_reaching(curve, target) for target in targets]
        best = min(point[2] for point in curve)
        target_rows.append([label, settings, f"{best:.4f}",
                            *("not reached" if r is None else f"{r[1]:.2f} s (epoch {r[0]})" for r in reached)])
    speed = markdown_table(["system (K=32, layers 64,64)", "settings", "epochs", "fit s", "ratings/s", "test RMSE",
                            "ratings/s vs tutorial"], speed_rows)
    to_target = markdown_table(["system", "settings", f"best test RMSE in {epochs} epochs",
                                *(f"time to {t}" for t in targets)], target_rows)
    return f"{speed}\n\n{to_target}"


def profile(split: Any, threads: int, device: str) -> str:
    """torch.profiler's top operators over one epoch of the default deep MF training (after a warm-up epoch)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from deepmf.models.registry import create_model
    from deepmf.training.engines.torch_engine import TorchEngine

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = create_model("deepmf", split.train, **ARCHITECTURE)
    engine = TorchEngine(model, split.train, deepmf_config(1, threads, device), torch.device(device))
    engine.train_epoch(1)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        engine.train_epoch(2)
    return (f"precision {engine.precision}, {threads} thread(s)\n"
            + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--targets", default="0.95,0.94,0.93", help="comma-separated test RMSE targets")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--profile", action="store_true", help="print the operator profile of one epoch instead")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for --profile")
    args = parser.parse_args()

    data = load(data_root() / "ml-100k")
    split = parse_split("u1", data)[0]
    print(machine_line())
    if args.profile:
        print(profile(split, args.threads, args.device))
    else:
        print(tables(data, split, args.epochs, [float(t) for t in args.targets.split(",")], args.device))
    print(f"load average after the run: {load_average():.2f}")


if __name__ == "__main__":
    main()
