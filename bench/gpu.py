"""GPU benchmark: every GPU engine next to its CPU engine, in one run, on ML-100K u1 and a 20M-rating set.

    python bench/gpu.py --out "$OUT"            # on a CUDA machine (budgeted for ~5 min on an H200; not run yet)
    python bench/gpu.py --device cpu --quick    # CPU-only smoke run of this script (GPU-only rows skipped)

(``bash bench/gpu_run.sh`` wraps the first line with the install and the test suite: see BENCHMARKS.md, "GPU".)

Rows, each measured in this process, CPU engines on all cores of the same machine:

- MF (biased, k=64 at 20M, the model's default k on ML-100K): numba CPU vs cuda-sgd vs the torch engine on
  the GPU; at 20M also cuda-sgd with other ratings-in-flight divisors (its accuracy/speed knob).
- Deep MF (K=32, layers 64-64) and NeuMF: CPU defaults vs GPU defaults (``gpu_batch_scaling``), and at 20M
  the GPU at the CPU's batch of 4096, to give the time-to-RMSE target.
- Bayesian MF (rank 10, implicit features, the date feature where times exist): numba sampler vs
  gibbs-torch.
- Last, if time is left: deep MF's GPU defaults with ``DEEPMF_COMPILE=1`` (torch.compile, cold compile counted).
- What ``--device auto`` picks for each model at each size (``deepmf.training.engines.place``).

Columns: wall seconds of the whole fit (engine construction, data transfer and kernel loading included,
after one untimed warm-up fit that compiles kernels), seconds per epoch and ratings/s of the training passes,
time-to-RMSE (training seconds until the test RMSE first reaches the group's reference row), test RMSE
(clipped to the scale, on ratings never trained on), peak GPU memory. The 20M set is the ML-20M-shaped one of
bench/scale.py, generated in memory and split 90/10 at random; ML-100K is u1 (needs ``$DEEPMF_DATA``; the
rows are skipped without it).

Results go to ``<out>/gpu_bench.json`` (written after every row, so a run stopped by its time limit keeps
what it measured) and ``<out>/gpu_bench.md``; the Markdown table is printed too. ``--budget`` seconds (soft):
once spent, the remaining rows are skipped and marked so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from _common import data_root, fmt_rate, machine_line, markdown_table

HEADERS = ["data", "model", "engine", "device", "settings", "epochs", "fit s", "s/epoch", "ratings/s",
           "time-to-RMSE s", "test RMSE", "peak GPU MiB", "note"]


class Bench:
    """Runs rows within a soft time budget and records each one as soon as it is measured."""

    def __init__(self, out: Path, device: torch.device, budget: float, quick: bool) -> None:
        self.out = out
        self.device = device
        self.budget = budget
        self.quick = quick
        self.started = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self.auto: list[dict[str, Any]] = []
        self.meta: dict[str, Any] = {"command": " ".join(sys.argv), "machine": machine_line(),
                                     "device": describe_device(device), "quick": quick}
        out.mkdir(parents=True, exist_ok=True)

    @property
    def cuda(self) -> bool:
        return self.device.type == "cuda"

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.started)

    def run(self, base: dict[str, Any], measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Measure one row (or record why it was skipped or failed) and write the results so far."""
        row = dict(base)
        if self.left() <= 0:
            row["note"] = "skipped: time budget spent"
        else:
            try:
                row.update(measure())
            except Exception as exc:  # one failed row must not cost the others
                row["note"] = f"error: {type(exc).__name__}: {exc}"[:300]
                traceback.print_exc(file=sys.stderr)
        self.rows.append(row)
        self.save()
        print(f"[{time.perf_counter() - self.started:6.1f}s] {_line(row)}", file=sys.stderr, flush=True)
        return row

    def save(self) -> None:
        payload = {**self.meta, "seconds": time.perf_counter() - self.started, "rows": self.rows,
                   "auto": self.auto}
        tmp = self.out / ".gpu_bench.json.tmp"
        tmp.write_text(json.dumps(payload, indent=1, default=float))
        tmp.replace(self.out / "gpu_bench.json")


def describe_device(device: torch.device) -> str:
    if device.type != "cuda":
        return f"cpu ({os.cpu_count()} cores), torch {torch.__version__}"
    props = torch.cuda.get_device_properties(device)
    try:
        import triton

        triton_version = triton.__version__
    except ImportError:
        triton_version = "absent"
    return (f"{props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs; torch "
            f"{torch.__version__}, CUDA {torch.version.cuda}, triton {triton_version}")


def _line(row: dict[str, Any]) -> str:
    return " | ".join(str(cell) for cell in _cells(row))


def _cells(row: dict[str, Any]) -> list[str]:
    def num(key: str, fmt: str) -> str:
        value = row.get(key)
        return "" if value is None else format(value, fmt)

    rate = row.get("ratings_per_s")
    return [row.get("data", ""), row.get("model", ""), row.get("engine", ""), row.get("device", ""),
            row.get("settings", ""), str(row.get("epochs", "")), num("fit_s", ".2f"), num("epoch_s", ".3f"),
            fmt_rate(rate) if rate else "", num("time_to_rmse_s", ".2f"), num("test_rmse", ".4f"),
            num("peak_gpu_mib", ".0f"), row.get("note", "")]


# ---- data --------------------------------------------------------------------------------------------------
def ml100k_u1() -> tuple[Any, Any] | None:
    from deepmf.data import load
    from deepmf.data.splits import parse_split

    folder = data_root() / "ml-100k"
    if not (folder / "u1.base").exists():
        return None
    split = parse_split("u1", load(folder))[0]
    return split.train, split.test


def large_set(quick: bool) -> tuple[Any, Any, str]:
    """(train, test, name): the 20M ML-20M-shaped set split 90/10, or a 300K stand-in with ``quick``."""
    from deepmf.data.idmap import IdMap
    from deepmf.data.ratings import Ratings, RatingScale
    from deepmf.data.splits import random_split
    from deepmf.data.synthetic import synthetic_ratings

    if quick:
        data = synthetic_ratings("lowrank", n_users=20_000, n_items=5_000, rank=4, n_observed=300_000, noise=0.5,
                                 seed=0)
        name = "synthetic 300K (quick)"
    else:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from scale import N_USERS, generate_arrays

        arrays, _ = generate_arrays(0)
        data = Ratings(arrays["users"], arrays["items"], arrays["ratings"],
                       IdMap(np.arange(N_USERS, dtype=np.int64), "int", "user"),
                       IdMap(arrays["movie_ids"].astype(np.int64), "int", "item"),
                       RatingScale(0.5, 5.0, 0.5), timestamps=arrays["timestamps"].astype(np.int64),
                       name="ml-20m-shaped")
        name = "20M (ML-20M-shaped)"
    split = random_split(data, 0.1, seed=0)
    return split.train, split.test, name


# ---- one fit -----------------------------------------------------------------------------------------------
def fit(train: Any, test: Any, model_name: str, model_options: dict[str, Any], overrides: dict[str, Any],
        curve: bool = False) -> dict[str, Any]:
    """Train through the Trainer (the library's own path) and measure it; see the module docstring."""
    from deepmf.experiment import train_config_for
    from deepmf.models.registry import create_model
    from deepmf.training.trainer import Trainer
    from deepmf.training.validation import evaluate_rmse

    config = train_config_for(model_name, {"patience": 0, **overrides})
    scale = train.scale
    cuda = config.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    points: list[tuple[float, float]] = []
    train_seconds = 0.0
    tests: dict[str, Any] = {}

    def score(model: Any) -> float:
        device = next(iter(model.parameters())).device
        if str(device) not in tests:
            tests[str(device)] = test.to(device, timestamps=model.uses_time)
        return evaluate_rmse(model, tests[str(device)], scale.minimum, scale.maximum)

    torch.manual_seed(config.seed)
    model = create_model(model_name, train, **model_options)

    def on_epoch(record: Any) -> None:
        nonlocal train_seconds
        train_seconds += len(train) / record.ratings_per_second
        if curve:
            points.append((train_seconds, score(model)))

    started = time.perf_counter()
    result = Trainer(config, progress=False, on_epoch=on_epoch).fit(model, train)
    if cuda:
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    epochs = result.epochs_run
    row = {"engine": result.engine, "device": result.device, "epochs": epochs, "fit_s": wall,
           "epoch_s": train_seconds / max(epochs, 1), "ratings_per_s": len(train) * epochs / train_seconds,
           "test_rmse": points[-1][1] if points else score(model), "curve": points,
           "effective_options": result.effective_options}
    if cuda:
        row["peak_gpu_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return row


def warm_up(train: Any, model_name: str, model_options: dict[str, Any], overrides: dict[str, Any]) -> None:
    """One untimed tiny fit, so kernels are compiled (numba, Triton) or loaded before the timed fits."""
    small = train.subset(np.arange(min(len(train), 2000)))
    fit(small, small, model_name, model_options, {**overrides, "epochs": 2})


def time_to(curve: list[tuple[float, float]], target: float) -> float | None:
    """Training seconds of the first epoch whose test RMSE is at or below ``target``."""
    return next((seconds for seconds, rmse in curve if rmse <= target), None)


# ---- the sections ------------------------------------------------------------------------------------------
def engines_for(bench: Bench) -> dict[str, str]:
    """Device strings per role: the GPU rows run on the CPU in a CPU-only smoke run."""
    gpu = str(bench.device) if bench.cuda else "cpu"
    return {"cpu": "cpu", "gpu": gpu}


def mf_rows(bench: Bench, train: Any, test: Any, data: str, factors: int | None, lr: float | None,
            l2: float | None, epochs: int, big: bool) -> None:
    dev = engines_for(bench)
    options = {} if factors is None else {"factors": factors}
    hyper = {k: v for k, v in (("lr", lr), ("l2", l2)) if v is not None}
    settings = f"k={factors or 'default'}" + "".join(f", {k} {v}" for k, v in hyper.items())
    runs = [("numba", "cpu", {}, settings), ("cuda-sgd", "gpu", {}, settings + ", default in-flight")]
    if big:
        from deepmf.training.engines import cuda_sgd

        default_divisor = cuda_sgd.ROWS_PER_RATING_IN_FLIGHT
        runs += [("cuda-sgd", "gpu", {"divisor": d}, settings + f", in-flight = min rows / {d}")
                 for d in (1, 2, 4, 16, 32) if d != default_divisor]
        runs += [("torch", "gpu", {"batch_size": b, "optimizer": "adam"},
                  f"k={factors}, adam lr 0.02, l2 0.1, batch {b:,}") for b in (65_536, 262_144)]
    else:
        runs += [("torch", "gpu", {}, "MF defaults (adam, batch 4096)")]
    reference: float | None = None
    for engine, role, extra, label in runs:
        device = dev[role]
        base = {"data": data, "model": "mf", "settings": label, "engine": engine, "device": device}
        if engine == "cuda-sgd" and not bench.cuda:
            bench.run(base, lambda: {"note": "skipped: needs CUDA (Triton)"})
            continue
        overrides = {"engine": engine, "device": device, "epochs": epochs, "optimizer": "sgd", **hyper}
        if engine == "torch":
            overrides = {"engine": engine, "device": device, "epochs": epochs}
            if big:
                overrides.update(lr=0.02, l2=0.1, batch_size=extra["batch_size"], optimizer="adam")

        def measure(engine=engine, overrides=overrides, extra=extra) -> dict[str, Any]:
            warm_up(train, "mf", options, overrides)
            if "divisor" not in extra:
                return fit(train, test, "mf", options, overrides, curve=True)
            from deepmf.training.engines import cuda_sgd

            saved = cuda_sgd.ROWS_PER_RATING_IN_FLIGHT
            cuda_sgd.ROWS_PER_RATING_IN_FLIGHT = extra["divisor"]
            try:
                return fit(train, test, "mf", options, overrides, curve=True)
            finally:
                cuda_sgd.ROWS_PER_RATING_IN_FLIGHT = saved

        row = bench.run(base, measure)
        if engine == "numba" and row.get("test_rmse") is not None:
            reference = row["test_rmse"]
        if reference is not None and row.get("curve"):
            row["time_to_rmse_s"] = time_to(row["curve"], reference)
            row["note"] = (row.get("note", "") + f" target: numba's {reference:.4f}").strip()
    bench.save()


def deep_rows(bench: Bench, train: Any, test: Any, data: str, epochs: int, big: bool) -> None:
    dev = engines_for(bench)
    options = {"factors": 32, "layers": [64, 64]}
    for model in ("deepmf",) if big else ("deepmf", "neumf"):
        model_options = options if model == "deepmf" else {}
        runs = [("CPU defaults", "cpu", {}, 1 if big else epochs)]
        if big:  # the GPU at the CPU's small batch sets the RMSE the large batch must reach, and how fast
            runs.append(("GPU, batch 4096 (CPU settings)", "gpu", {"gpu_batch_scaling": False}, 1))
        runs.append(("GPU defaults (gpu_batch_scaling)", "gpu", {}, epochs))
        reference: float | None = None
        for label, role, extra, n_epochs in runs:
            base = {"data": data, "model": model, "settings": label, "device": dev[role]}
            overrides = {"device": dev[role], "epochs": n_epochs, **extra}

            def measure(model=model, model_options=model_options, overrides=overrides) -> dict[str, Any]:
                warm_up(train, model, model_options, overrides)
                return fit(train, test, model, model_options, overrides, curve=True)

            row = bench.run(base, measure)
            if row.get("effective_options"):
                effective = row["effective_options"]
                row["settings"] += f" [batch {effective['batch_size']:,}, lr {effective['lr']:.3g}]"
            if big and "4096" in label and row.get("test_rmse") is not None:
                reference = row["test_rmse"]
            if reference is not None and "defaults (gpu" in label and row.get("curve"):
                row["time_to_rmse_s"] = time_to(row["curve"], reference)
                row["note"] = (row.get("note", "") + f" target: batch 4096's {reference:.4f}").strip()
    bench.save()


def compile_row(bench: Bench, train: Any, test: Any, data: str, epochs: int) -> None:
    """Deep MF GPU defaults with ``DEEPMF_COMPILE=1``: does torch.compile pay on the GPU (compile time counted)?"""
    if not bench.cuda or bench.left() < 90:  # a cold Inductor compile alone can take a minute
        return
    base = {"data": data, "model": "deepmf", "settings": "GPU defaults + DEEPMF_COMPILE=1 (cold compile in fit s)",
            "device": str(bench.device)}
    overrides = {"device": str(bench.device), "epochs": epochs}

    def measure() -> dict[str, Any]:
        os.environ["DEEPMF_COMPILE"] = "1"
        try:
            return fit(train, test, "deepmf", {"factors": 32, "layers": [64, 64]}, overrides, curve=True)
        finally:
            del os.environ["DEEPMF_COMPILE"]

    bench.run(base, measure)


def bayes_rows(bench: Bench, train: Any, test: Any, data: str, sweeps: dict[str, int]) -> None:
    dev = engines_for(bench)
    for engine, role in (("gibbs", "cpu"), ("gibbs-torch", "gpu")):
        n = sweeps[role]
        burn_in = max(1, n // 3)
        options = {"rank": 10, "burn_in": burn_in, "samples": max(1, n - burn_in)}
        overrides = {"engine": engine, "device": dev[role], "epochs": n}
        base = {"data": data, "model": "bayes", "engine": engine, "device": dev[role],
                "settings": f"rank 10, implicit, burn-in {burn_in}"}

        def measure(options=options, overrides=overrides) -> dict[str, Any]:
            warm_up(train, "bayes", {**options, "burn_in": 1, "samples": 1}, overrides)
            row = fit(train, test, "bayes", options, overrides)
            row["note"] = f"{1 / row['epoch_s']:.2f} sweeps/s"
            return row

        bench.run(base, measure)
    cpu, gpu = bench.rows[-2], bench.rows[-1]
    if cpu.get("epoch_s") and gpu.get("epoch_s"):
        gpu["note"] += f"; {cpu['epoch_s'] / gpu['epoch_s']:.1f}x the CPU sampler's sweeps/s"
    bench.save()


def auto_rows(bench: Bench, sizes: dict[str, int]) -> None:
    """What ``--device auto`` picks per model and size on this machine."""
    from deepmf.data.synthetic import synthetic_ratings
    from deepmf.experiment import train_config_for
    from deepmf.models.registry import create_model
    from deepmf.training.engines import place

    tiny = synthetic_ratings("lowrank", n_users=20, n_items=20, rank=2, n_observed=100, seed=0)
    for model in ("mf", "deepmf", "neumf", "svdpp", "bayes"):
        for data, n in sizes.items():
            config = train_config_for(model)
            device, choice = place(create_model(model, tiny), config, n)
            bench.auto.append({"model": model, "data": data, "ratings": n, "device": str(device),
                               "engine": choice.name})
    bench.save()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=os.environ.get("OUT") or str(Path(__file__).parent / "results" / "gpu"),
                        help="folder for gpu_bench.json and gpu_bench.md (default: $OUT, else bench/results/gpu)")
    parser.add_argument("--device", default="auto", help="cuda, cuda:N, cpu or auto (cuda when present)")
    parser.add_argument("--quick", action="store_true", help="few epochs and a 300K stand-in for the 20M set")
    parser.add_argument("--budget", type=float, default=240.0, help="soft time budget in seconds")
    parser.add_argument("--skip-large", action="store_true", help="only the ML-100K rows")
    args = parser.parse_args()

    from deepmf.device import resolve_device

    device = resolve_device(args.device)
    bench = Bench(Path(args.out), device, args.budget, args.quick)
    print(bench.meta["machine"], file=sys.stderr)
    print(bench.meta["device"], file=sys.stderr)
    sizes: dict[str, int] = {}
    # The issue's targets first (ML-100K MF, then every 20M row), the rest after, so that a budget cut
    # costs the least important rows.
    small = ml100k_u1()
    small_epochs = 3 if args.quick else 20
    if small is None:
        bench.rows.append({"data": "ML-100K u1", "note": f"skipped: no ml-100k under {data_root()} (DEEPMF_DATA)"})
    else:
        sizes["ML-100K u1"] = len(small[0])
        mf_rows(bench, *small, "ML-100K u1", None, None, None, small_epochs, big=False)
    large = None
    large_epochs = 2 if args.quick else 3
    if not args.skip_large and bench.left() <= 0:
        bench.rows.append({"data": "20M", "note": "skipped: time budget spent before the 20M rows"})
    elif not args.skip_large:
        started = time.perf_counter()
        large = large_set(args.quick)
        bench.meta["large_set_seconds"] = time.perf_counter() - started
        sizes[large[2]] = len(large[0])
        mf_rows(bench, *large, 64, 0.015, 0.08, large_epochs, big=True)
        deep_rows(bench, *large, large_epochs, big=True)
        bayes_rows(bench, *large, {"cpu": 2, "gpu": 3 if args.quick else 5})
    if small is not None:
        deep_rows(bench, *small, "ML-100K u1", small_epochs, big=False)
        sweeps = 6 if args.quick else 60
        bayes_rows(bench, *small, "ML-100K u1", {"cpu": sweeps, "gpu": sweeps})
    if large is not None:
        compile_row(bench, *large, large_epochs)
    auto_rows(bench, {**sizes, "1M": 1_000_000})
    table = markdown_table(HEADERS, [_cells(row) for row in bench.rows])
    auto = markdown_table(["model", "data", "training ratings", "auto device", "auto engine"],
                          [[a["model"], a["data"], f"{a['ratings']:,}", a["device"], a["engine"]]
                           for a in bench.auto])
    text = (f"{bench.meta['machine']}\n\n{bench.meta['device']}; {platform.python_version()}\n\n"
            f"`{bench.meta['command']}` ({time.perf_counter() - bench.started:.0f} s)\n\n{table}\n\n"
            f"What `--device auto` picks here:\n\n{auto}\n")
    (bench.out / "gpu_bench.md").write_text(text)
    print(text)
    if any(math.isnan(r.get("test_rmse", 0.0)) for r in bench.rows):
        sys.exit(1)


if __name__ == "__main__":
    main()
