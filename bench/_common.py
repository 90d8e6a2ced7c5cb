"""Shared benchmark helpers: wall-clock timing, peak RSS, the machine line, markdown tables, child processes.

Benchmarks print markdown tables ready to paste into BENCHMARKS.md, preceded by the machine and its load, so a
figure is never separated from the conditions it was taken under.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
# Generated data sets live here (git-ignored); real MovieLens data comes from $DEEPMF_DATA.
DATA_DIR = BENCH_DIR / "data"


def data_root() -> Path:
    """The folder with ml-100k/ (``$DEEPMF_DATA``, default ../shared/data beside the repository)."""
    root = Path(os.environ.get("DEEPMF_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not root.is_absolute():
        root = (REPO_ROOT / root).resolve()
    return root


class Stopwatch:
    """Accumulates wall-clock seconds over the blocks it times (so evaluation can be left out of fit time)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextmanager
    def running(self) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """Call ``fn()``; return its result and the wall-clock seconds it took."""
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mib() -> tuple[float, float]:
    """(current, peak since start or since ``reset_peak_rss``) resident set size in MiB, from /proc (Linux)."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024.0
    return values["VmRSS"], values["VmHWM"]


def reset_peak_rss() -> None:
    """Start a new peak-RSS window (Linux: writing 5 to /proc/self/clear_refs resets VmHWM)."""
    Path("/proc/self/clear_refs").write_text("5")


def load_average() -> float:
    """The 1-minute load average: the benchmark notes how busy the machine was."""
    return os.getloadavg()[0]


def machine_line() -> str:
    """One line naming the CPU, cores, memory, load and library versions used for a run."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import numba
    import numpy
    import torch

    return (f"{cpu}, {os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, load average {load_average():.2f}; "
            f"Python {platform.python_version()}, torch {torch.__version__}, numba {numba.__version__}, "
            f"numpy {numpy.__version__}")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats are printed as given (format them before)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_rate(ratings_per_second: float) -> str:
    """Throughput as e.g. ``25.1M`` or ``58K`` ratings/s."""
    if ratings_per_second >= 1e6:
        return f"{ratings_per_second / 1e6:.1f}M"
    return f"{ratings_per_second / 1e3:.0f}K"


def run_child(args: Sequence[str], timeout: float | None = None) -> dict[str, Any]:
    """Run ``python bench/<args>`` in a fresh process and parse the one JSON object it prints last.

    A fresh process gives each measurement its own peak RSS and its own (cold) memory.

    Raises:
        RuntimeError: the child failed; its stderr tail is in the message.
    """
    proc = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO_ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fit_with_curve(model_name: str, train: Any, test: Any, model_options: dict[str, Any], config: Any,
                   curve: bool = False) -> dict[str, Any]:
    """Train a deepmf model through the Trainer (the library's own path) and time it.

    Args:
        model_name: registry name.
        train: training Ratings; test: test Ratings (scored after every epoch when ``curve``).
        model_options: model options; config: a TrainConfig.
        curve: score the test part after every epoch (scoring time is not counted as training time).

    Returns:
        {"model", "engine", "seconds" (training passes only), "ratings_per_second", "test_rmse" (final),
        "curve": [(epoch, cumulative training seconds, test RMSE)]}.
    """
    import torch

    from deepmf.models.registry import create_model
    from deepmf.training.trainer import Trainer
    from deepmf.training.validation import evaluate_rmse

    scale = train.scale
    test_tensors = test.to()
    points: list[tuple[int, float, float]] = []
    elapsed = 0.0

    def score(model: Any) -> float:
        return evaluate_rmse(model, test_tensors, scale.minimum, scale.maximum)

    torch.manual_seed(config.seed)
    model = create_model(model_name, train, **model_options)

    def on_epoch(record: Any) -> None:
        nonlocal elapsed
        elapsed += len(train) / record.ratings_per_second
        if curve:
            points.append((record.epoch, elapsed, score(model)))

    result = Trainer(config, progress=False, on_epoch=on_epoch).fit(model, train)
    return {"model": model, "engine": result.engine, "seconds": elapsed,
            "ratings_per_second": len(train) * result.epochs_run / elapsed, "test_rmse": score(model),
            "curve": points}


def first_reaching(curve: Sequence[tuple[int, float, float]], target: float) -> tuple[int, float] | None:
    """(epoch, cumulative training seconds) of the first point of ``curve`` with test RMSE <= target."""
    for epoch, seconds, rmse in curve:
        if rmse <= target:
            return epoch, seconds
    return None
