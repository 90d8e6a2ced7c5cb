"""The torch engine on one thread and on two: the figures behind ``deepmf.device.default_torch_threads``.

    DEEPMF_DATA=../shared/data python bench/torch_threads.py                 # every row (about 15 minutes)
    DEEPMF_DATA=../shared/data python bench/torch_threads.py --sizes u1      # ML-100K u1 only

For each model trained by the torch engine (MF with its torch defaults: Adam, batch 4096; deep MF K=32 with
layers 64,64; NeuMF with its defaults), each data size and each thread count, a fresh process (torch's OpenMP
pool is process-wide) trains ``--epochs`` epochs through the Trainer with the model's shipped training defaults
(no early stopping) and reports the median seconds per epoch after the first. Each row is measured twice: as the
machine is found ("as found": no load of ours; the load average is printed), and with one busy-loop process of ours
beside it (a second program keeping one core busy, as on a shared machine or a laptop doing anything else).
A child that runs past ``--timeout`` seconds is reported as slower than that.

Sizes: ML-100K u1 (80,000 training ratings), and generated low-rank ratings of 1M (6,040 users x 3,700 items,
ML-1M-sized) and 4M (60,000 x 20,000).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from typing import Any

from _common import REPO_ROOT, data_root, fmt_rate, load_average, machine_line, markdown_table

MODELS: dict[str, dict[str, Any]] = {
    "mf": {"factors": 32},
    "deepmf": {"factors": 32, "layers": [64, 64]},
    "neumf": {},
}
SIZES = {"u1": None, "1m": (6040, 3700, 1_000_000), "4m": (60_000, 20_000, 4_000_000)}


def child(model: str, size: str, threads: int, epochs: int) -> dict[str, Any]:
    from deepmf.data import load
    from deepmf.data.splits import parse_split
    from deepmf.data.synthetic import synthetic_ratings
    from deepmf.experiment import train_config_for
    from deepmf.training.fit import train_model

    if SIZES[size] is None:
        data = load(data_root() / "ml-100k")
        train = parse_split("u1", data)[0].train
    else:
        n_users, n_items, n = SIZES[size]
        data = synthetic_ratings("lowrank", n_users=n_users, n_items=n_items, rank=10, n_observed=n, noise=0.5)
        train = data
    config = train_config_for(model, {"engine": "torch", "device": "cpu", "threads": threads, "epochs": epochs,
                                      "patience": 0})
    trained = train_model(model, data, train, None, MODELS[model], config, progress=False)
    seconds = [record.seconds for record in trained.result.history]
    steady = statistics.median(seconds[1:] or seconds)
    return {"n": len(train), "seconds_per_epoch": steady, "ratings_per_second": len(train) / steady}


def busy_loop() -> None:  # pragma: no cover - a background load, killed by the parent
    while True:
        pass


def measure(model: str, size: str, threads: int, epochs: int, timeout: float) -> dict[str, Any] | None:
    args = [sys.executable, __file__, "--child", model, size, str(threads), str(epochs)]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT, check=True)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=4)
    parser.add_argument("--sizes", default="u1,1m,4m")
    parser.add_argument("--models", default="mf,deepmf,neumf")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()
    if args.child:
        model, size, threads, epochs = args.child
        print(json.dumps(child(model, size, int(threads), int(epochs))))
        return
    print(machine_line())
    rows = []
    for size in args.sizes.split(","):
        for model in args.models.split(","):
            for load_name in ("as found", "+ one busy loop"):
                loader = None
                if load_name != "as found":
                    loader = multiprocessing.Process(target=busy_loop, daemon=True)
                    loader.start()
                    time.sleep(1.0)
                try:
                    cells = []
                    for threads in (1, 2):
                        before = load_average()
                        result = measure(model, size, threads, args.epochs, args.timeout)
                        if result is None:
                            cells.append(f"> {args.timeout:.0f} s (load {before:.1f})")
                        else:
                            cells.append(f"{result['seconds_per_epoch']:.2f} s, "
                                         f"{fmt_rate(result['ratings_per_second'])}/s (load {before:.1f})")
                finally:
                    if loader is not None:
                        loader.kill()
                        loader.join()
                rows.append([size, model, load_name, *cells])
                print(" | ".join(rows[-1]), flush=True, file=sys.stderr)
    print(markdown_table(["data", "model", "machine", "1 thread: s/epoch", "2 threads: s/epoch"], rows))
    print(f"(pid {os.getpid()}, {args.epochs} epochs per run, median epoch after the first)")


if __name__ == "__main__":
    main()
