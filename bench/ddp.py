"""Data-parallel scaling: one model trained by 1, 2, ... processes under torchrun; ratings/s and time-to-RMSE.

    python bench/ddp.py                                    # ML-100K u1, deep MF, 1 and 2 processes, CPU (gloo)
    python bench/ddp.py --procs 1,2,4,8 --device cuda      # a GPU machine: one process per GPU (NCCL)
    python bench/ddp.py --data bench/data/scale/ratings-1m.csv --split random:0.1 --model mf --engine torch

Each job is the real command line: ``python -m deepmf train ...`` for one process and ``python -m
torch.distributed.run --nproc-per-node P -m deepmf train ...`` for P, with a fixed number of epochs
(``--patience 0``) and 5 % of the training part carved off for validation, so every epoch has a validation RMSE.
The global batch is the same for every P, so the runs follow the same trajectory and differ in speed.

Reported per job (the median over ``--repeats``, the process counts alternating so that load drifts hit them
alike): training ratings/s (training passes only), seconds per epoch (with validation), time to reach the
target validation RMSE (cumulative epoch seconds; the target is the best RMSE every job reached, unless
``--target``), final test RMSE, and the whole command's wall time (start-up, loading, test scoring included).
On the CPU each process gets this machine's cores divided by P (deepmf's default under torchrun) unless
``--threads`` sets a count for every process: ``--threads 1`` compares 1 and P processes of one thread each.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Any

from _common import REPO_ROOT, fmt_rate, load_average, machine_line, markdown_table


def _command(procs: int, args: argparse.Namespace) -> list[str]:
    train = ["train", args.data, "--split", args.split, "--model", args.model, "--epochs", str(args.epochs),
             "--patience", "0", "--val-fraction", "0.05", "--seed", str(args.seed), "--device", args.device,
             "--quiet", "--json", *args.extra]
    if args.engine:
        train += ["--engine", args.engine]
    if args.threads:
        train += ["--threads", str(args.threads)]
    if procs == 1:
        return [sys.executable, "-m", "deepmf", *train]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(procs), "-m", "deepmf", *train]


def _run(procs: int, args: argparse.Namespace) -> dict[str, Any]:
    command = _command(procs, args)
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO_ROOT, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()[-6000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    return {"procs": procs, "wall": wall, "summary": summary}


def _time_to(history: list[dict[str, Any]], target: float) -> float | None:
    elapsed = 0.0
    for record in history:
        elapsed += record["seconds"]
        if record["val_rmse"] is not None and record["val_rmse"] <= target:
            return elapsed
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="ml-100k", help="edition name or ratings file (default ml-100k)")
    parser.add_argument("--split", default="u1")
    parser.add_argument("--model", default="deepmf")
    parser.add_argument("--engine", default="", help="e.g. torch for MF (one process would pick numba)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu (gloo) or cuda (NCCL, one process per GPU)")
    parser.add_argument("--procs", default="1,2", help="process counts, comma-separated")
    parser.add_argument("--threads", type=int, default=0, help="torch threads in every process (default: "
                        "deepmf's: all cores for one process, the cores divided by P for each of P)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--target", type=float, default=None, help="validation RMSE to time (default: the "
                        "best RMSE every job reached)")
    parser.add_argument("extra", nargs="*", help="more `deepmf train` options, after --")
    args = parser.parse_args()
    procs = [int(p) for p in args.procs.split(",")]
    if args.device.startswith("cuda"):
        import torch

        if max(procs) > torch.cuda.device_count():
            parser.error(f"{max(procs)} processes need as many GPUs; this machine has {torch.cuda.device_count()}")

    print(machine_line(), file=sys.stderr)
    load_before = load_average()
    runs = [_run(p, args) for _ in range(args.repeats) for p in procs]
    load_after = load_average()
    target = args.target if args.target is not None else max(
        min(r["val_rmse"] for r in run["summary"]["history"]) for run in runs)

    rows = []
    for p in procs:
        mine = [run for run in runs if run["procs"] == p]
        summaries = [run["summary"] for run in mine]
        rate = statistics.median(s["ratings_per_second"] for s in summaries)
        per_epoch = statistics.median(s["train_seconds"] / s["epochs_run"] for s in summaries)
        reach = [_time_to(s["history"], target) for s in summaries]
        reached = [t for t in reach if t is not None]
        rows.append([p, summaries[0]["world_size"], f"{fmt_rate(rate)}", rate, f"{per_epoch:.3f}",
                     f"{statistics.median(reached):.2f}" if len(reached) == len(reach) else "not reached",
                     f"{statistics.median(s['test']['rmse'] for s in summaries):.4f}",
                     f"{statistics.median(run['wall'] for run in mine):.1f}"])
    base_rate = rows[0][3]
    for row in rows:
        row[3] = f"{row[3] / base_rate:.2f}x"
    print(f"`python bench/ddp.py --data {args.data} --split {args.split} --model {args.model} --epochs "
          f"{args.epochs} --device {args.device} --procs {args.procs} --repeats {args.repeats}"
          f"{' --threads ' + str(args.threads) if args.threads else ''}"
          f"{' --engine ' + args.engine if args.engine else ''}{' -- ' + ' '.join(args.extra) if args.extra else ''}"
          f"` (load {load_before:.2f} → {load_after:.2f}; target validation RMSE {target:.4f}; median of "
          f"{args.repeats}; speed-up relative to {procs[0]} process(es))\n")
    print(markdown_table(["processes", "world_size", "ratings/s", "speed-up", "s/epoch", "s to target", "test RMSE",
                          "command wall s"], rows))
    print(json.dumps({"target": target, "load": [load_before, load_after],
                      "runs": [{"procs": r["procs"], "wall": r["wall"],
                                "ratings_per_second": r["summary"]["ratings_per_second"],
                                "train_seconds": r["summary"]["train_seconds"],
                                "test_rmse": r["summary"]["test"]["rmse"],
                                "val_rmse": [h["val_rmse"] for h in r["summary"]["history"]]} for r in runs]}))


if __name__ == "__main__":
    main()
