"""Deep MF speed on ML-100K u1 (K=32, layers 64,64): deepmf's torch engine vs the tutorials' per-sample loop.

    DEEPMF_DATA=../shared/data python bench/speed_deep.py             # speed + time-to-RMSE tables
    DEEPMF_DATA=../shared/data python bench/speed_deep.py --profile   # where one epoch's time goes
    DEEPMF_DATA=../shared/data python bench/speed_deep.py --cpu-time --epochs 12   # load-proof A/B figure

Speed table: every row trains the same architecture for the same number of epochs (``--epochs``, no early
stopping; the tutorial row ``--tutorial-epochs``). deepmf rows use DeepMF's shipped defaults
(deepmf.models.registry: Adam lr 0.01, batch 4096, L2 on the rows used, no dropout) through the Trainer, with
1 and 2 torch threads, with and without the bfloat16 forward pass (``DEEPMF_PRECISION``), eager and
``torch.compile``d (``DEEPMF_COMPILE=1``; the first compiled row starts from an empty Inductor cache, the later
ones reuse it), plus rows with a larger batch, a larger rate and a cosine schedule; the tutorial row is
bench/tutorial_loop.py (Adam lr 1e-3, batch 512, per-sample ``Dataset.__getitem__``). Seconds count training
passes only (compiling happens in epoch 1, so it counts); "steady" ratings/s leaves epoch 1 out. Test RMSE is
on u1.test, clipped.

Time-to-RMSE table: the same runs scored on u1.test after every epoch; training seconds until the test RMSE
first reaches each ``--targets`` value.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import torch

import tutorial_loop
from _common import data_root, first_reaching, fit_with_curve, fmt_rate, load_average, machine_line, markdown_table
from deepmf.data import load
from deepmf.data.splits import parse_split
from deepmf.models.registry import default_train_options
from deepmf.training.config import TrainConfig

ARCHITECTURE = {"factors": 32, "layers": (64, 64)}


def deepmf_config(epochs: int, threads: int, device: str, **overrides: Any) -> TrainConfig:
    return TrainConfig(**{**default_train_options("deepmf"), "epochs": epochs, "patience": 0, "threads": threads,
                          "device": device, **overrides})


@contextlib.contextmanager
def environment(**values: str) -> Iterator[None]:
    """Set environment variables (read when the engine is built) for the duration of one run."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value


# (threads, precision, compiled, TrainConfig overrides) of each deepmf row.
LARGE_BATCH = {"batch_size": 8192, "lr": 0.02, "lr_schedule": "cosine"}
CPU_ROWS = [(1, "auto", False, {}), (1, "fp32", False, {}), (2, "auto", False, {}), (1, "auto", True, {}),
            (1, "auto", True, {}), (2, "auto", True, {}), (1, "auto", False, LARGE_BATCH),
            (1, "auto", True, LARGE_BATCH)]
CUDA_ROWS = [(1, "auto", False, {}), (1, "auto", True, {}), (1, "auto", False, LARGE_BATCH)]


def settings_label(precision: str, compiled: bool, overrides: dict[str, Any], cold: bool) -> str:
    label = f"precision {precision}, " + ("compiled" + (" (empty cache)" if cold else " (cached)")
                                          if compiled else "eager")
    if overrides:
        label += f", batch {overrides['batch_size']}, lr {overrides['lr']}, {overrides['lr_schedule']}"
    return label


def tables(data: Any, split: Any, epochs: int, tutorial_epochs: int, targets: list[float], device: str,
           cache: str) -> str:
    n = len(split.train)
    tutorial = tutorial_loop.run("deepmf", data, split, epochs=tutorial_epochs, factors=ARCHITECTURE["factors"],
                                 hidden=ARCHITECTURE["layers"])
    tutorial_rate = tutorial["ratings_per_second"]
    per_epoch = tutorial["seconds"] / tutorial_epochs
    runs = [("tutorial per-sample DataLoader loop", tutorial["settings"], tutorial_epochs,
             [(e + 1, per_epoch * (e + 1), h["test_rmse"]) for e, h in enumerate(tutorial["history"])],
             tutorial["seconds"], tutorial["test_rmse"])]
    compiled_before = False
    for threads, precision, compiled, overrides in (CPU_ROWS if device == "cpu" else CUDA_ROWS):
        with environment(DEEPMF_PRECISION=precision, DEEPMF_COMPILE="1" if compiled else "0",
                         TORCHINDUCTOR_CACHE_DIR=cache):
            run = fit_with_curve("deepmf", split.train, split.test, ARCHITECTURE,
                                 deepmf_config(epochs, threads, device, **overrides), curve=True)
        label = f"deepmf DeepMF, {run['engine']} engine, {threads} thread{'s' if threads > 1 else ''}"
        settings = settings_label(precision, compiled, overrides, cold=compiled and not compiled_before)
        compiled_before = compiled_before or compiled
        runs.append((label, settings, epochs, run["curve"], run["seconds"], run["test_rmse"]))
    speed_rows, target_rows = [], []
    for label, settings, run_epochs, curve, seconds, rmse in runs:
        rate = n * run_epochs / seconds
        steady = n * (run_epochs - 1) / (seconds - curve[0][1]) if run_epochs > 1 else rate
        speed_rows.append([label, settings, run_epochs, f"{seconds:.2f}", f"{curve[0][1]:.2f}", fmt_rate(rate),
                           fmt_rate(steady), f"{rmse:.4f}", f"{steady / tutorial_rate:.1f}x"])
        reached = [first_reaching(curve, target) for target in targets]
        best = min(point[2] for point in curve)
        target_rows.append([label, settings, f"{best:.4f}",
                            *("not reached" if r is None else f"{r[1]:.2f} s (epoch {r[0]})" for r in reached)])
    speed = markdown_table(["system (K=32, layers 64,64)", "settings", "epochs", "fit s", "epoch 1 s", "ratings/s",
                            "steady ratings/s (epochs 2+)", "test RMSE", "steady ratings/s vs tutorial"],
                           speed_rows)
    to_target = markdown_table(["system", "settings", "best test RMSE in its epochs",
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


def cpu_time_rates(split: Any, epochs: int, device: str) -> str:
    """Ratings per CPU-second of the default deep MF engine on one thread, eager and compiled.

    CPU time of a one-thread process is what the training itself costs, whatever else the machine runs, so
    this compares versions (run it on two checkouts) on a busy machine; epoch 1 (compiling) is left out.
    """
    from deepmf.models.registry import create_model
    from deepmf.training.engines.torch_engine import TorchEngine
    from deepmf.training.validation import evaluate_rmse

    torch.set_num_threads(1)
    test = split.test.to(device)
    rows = []
    for compiled in ("0", "1"):
        with environment(DEEPMF_COMPILE=compiled):
            torch.manual_seed(0)
            model = create_model("deepmf", split.train, **ARCHITECTURE)
            engine = TorchEngine(model, split.train, deepmf_config(epochs, 1, device), torch.device(device))
            seconds, best = [], math.inf
            for epoch in range(1, epochs + 1):
                started = time.process_time()
                engine.train_epoch(epoch)
                seconds.append(time.process_time() - started)
                best = min(best, evaluate_rmse(model, test, split.train.scale.minimum, split.train.scale.maximum))
        rate = len(split.train) * (epochs - 1) / sum(seconds[1:])
        rows.append(["compiled" if compiled == "1" else "eager", fmt_rate(rate), f"{best:.4f}"])
    return markdown_table(["deep MF step, 1 thread", f"ratings per CPU-second (epochs 2-{epochs})",
                           "best test RMSE"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--tutorial-epochs", type=int, default=None,
                        help="epochs of the tutorial loop row (default: --epochs); it is ~100x slower")
    parser.add_argument("--targets", default="0.95,0.94,0.93", help="comma-separated test RMSE targets")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--profile", action="store_true", help="print the operator profile of one epoch instead")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for --profile")
    parser.add_argument("--cpu-time", action="store_true",
                        help="print eager and compiled ratings per CPU-second on one thread instead")
    args = parser.parse_args()

    data = load(data_root() / "ml-100k")
    split = parse_split("u1", data)[0]
    print(machine_line())
    if args.profile:
        print(profile(split, args.threads, args.device))
    elif args.cpu_time:
        print(cpu_time_rates(split, args.epochs, args.device))
    else:
        with tempfile.TemporaryDirectory(prefix="deepmf-inductor-") as cache:
            print(tables(data, split, args.epochs, args.tutorial_epochs or args.epochs,
                         [float(t) for t in args.targets.split(",")], args.device, cache))
    print(f"load average after the run: {load_average():.2f}")


if __name__ == "__main__":
    main()
