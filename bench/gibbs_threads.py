"""Bayesian MF's Gibbs sampler on one thread and on two: the figures behind ``deepmf.device.default_cpu_threads``.

    DEEPMF_DATA=../shared/data python bench/gibbs_threads.py

Two measurements, each thread count in a fresh process (thread pools are process-wide, so one run must not warm
or spin up the pools of the next):
1. ML-100K u1: ``run_experiment`` with Bayesian MF's defaults (300 sweeps, implicit + date features), wall time of
   the fit plus scoring, and the test RMSE (the chain is the same whatever the thread count).
2. 1M generated low-rank ratings (6,040 users x 3,700 items, rank 10, no timestamps): milliseconds per sweep,
   the mean of sweeps 2-6.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from _common import data_root, machine_line, markdown_table

THREADS = (1, 2)


def child(kind: str, threads: int) -> dict[str, float]:
    import torch

    from deepmf.data import load
    from deepmf.data.splits import parse_split
    from deepmf.data.synthetic import synthetic_ratings
    from deepmf.experiment import run_experiment, train_config_for
    from deepmf.models.registry import create_model
    from deepmf.training.config import TrainConfig
    from deepmf.training.engines.gibbs import GibbsEngine

    if kind == "u1":
        data = load(data_root() / "ml-100k")
        split = parse_split("u1", data)[0]
        config = train_config_for("bayes", {"seed": 0, "threads": threads})
        start = time.perf_counter()
        result = run_experiment(data, split, "bayes", {}, config, progress=False)
        return {"seconds": time.perf_counter() - start, "rmse": float(result.metrics["rmse"])}
    data = synthetic_ratings("lowrank", n_users=6040, n_items=3700, rank=10, n_observed=1_000_000, noise=0.5,
                             seed=0)
    model = create_model("bayes", data)
    engine = GibbsEngine(model, data, TrainConfig(epochs=300, seed=0, threads=threads), torch.device("cpu"))
    engine.train_epoch(1)  # compiles nothing (kernels are cached) but touches every array once
    start = time.perf_counter()
    for epoch in range(2, 7):
        engine.train_epoch(epoch)
    return {"ms_per_sweep": (time.perf_counter() - start) / 5 * 1000}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]))))
        return
    print(machine_line())
    rows = []
    for kind in ("u1", "1m"):
        for threads in THREADS:
            out = subprocess.run([sys.executable, __file__, "--child", kind, str(threads)], check=True,
                                 capture_output=True, text=True).stdout
            result = json.loads(out.strip().splitlines()[-1])
            if kind == "u1":
                rows.append(["ML-100K u1, fit + score", threads, f"{result['seconds']:.1f} s",
                             f"RMSE {result['rmse']:.4f}"])
            else:
                rows.append(["1M synthetic ratings, one sweep", threads, f"{result['ms_per_sweep']:.0f} ms", ""])
    print(markdown_table(["what", "threads", "time", ""], rows))


if __name__ == "__main__":
    main()
