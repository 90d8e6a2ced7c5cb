"""Choose the torch device (explicit argument > $DEEPMF_DEVICE > cuda if present > cpu), whether a model's GPU
engine pays off against its CPU engine, and CPU thread counts.

``resolve_device`` answers "which device is 'auto' here"; ``deepmf.training.engines.place`` uses it and
``gpu_pays_off`` to put each model on the device where it trains faster. This is also the one place that decides
how many CPU threads a run uses when it names none: ``default_cpu_threads`` for the compiled (numba) samplers,
``default_torch_threads`` for the torch engine; both chosen by measurement.
"""

from __future__ import annotations

import os
import time

import torch

from deepmf.errors import ConfigError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Return the device to train or score on.

    Args:
        device: "cpu", "cuda", "cuda:N", "auto" or None. None and "auto" consult ``$DEEPMF_DEVICE``, then
            pick CUDA when available.

    Raises:
        ConfigError: the name is not a device, or CUDA was asked for on a machine without it.
    """
    if isinstance(device, torch.device):
        return device
    if device is not None and not isinstance(device, str):
        raise ConfigError(f"device must be a name (cpu, cuda, cuda:N or auto), got {type(device).__name__}")
    name, source = (device or "auto").strip().lower(), ""
    if name == "auto":
        name = os.environ.get("DEEPMF_DEVICE", "auto").strip().lower() or "auto"
        source = " (from $DEEPMF_DEVICE)"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"unknown device {name!r}{source}: use cpu, cuda, cuda:N or auto") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}{source} requested but CUDA is not available on this machine")
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {name!r}{source}: use cpu, cuda, cuda:N or auto")
    return resolved


def auto_device_requested(device: str | torch.device | None) -> bool:
    """Whether ``device`` leaves the choice to deepmf: None or "auto", with ``$DEEPMF_DEVICE`` unset or "auto"."""
    if isinstance(device, torch.device):
        return False
    name = (device or "auto").strip().lower()
    return name == "auto" and (os.environ.get("DEEPMF_DEVICE", "auto").strip().lower() or "auto") == "auto"


# With CUDA present and the device left to deepmf, (engine on the GPU, engine on the CPU) -> training ratings
# from which the GPU engine is expected to be faster; pairs not listed take the GPU at any size. PROVISIONAL:
# chosen from first principles until bench/gpu.py measures them on an H200 (see BENCHMARKS.md, "GPU").
# - MF: a CUDA context and loading the Triton kernel cost a few tenths of a second once per process, while
#   the numba engine trains ML-100K u1 (80K ratings) in a few ms per epoch on one core; the GPU's per-epoch
#   advantage covers that start-up from about a million ratings (20-40 epochs at ~20M ratings/s per 2 cores).
# - Bayesian MF: a GPU sweep is a few dozen launches whatever the size (batched Cholesky over every row at
#   once, a conjugate-gradient draw of the implicit rows), while the CPU sampler's sweep grows with the data;
#   ML-100K sweeps take 25 ms on one core. Same threshold until measured.
# - SVD++: no GPU engine of its own; the torch engine's minibatch steps are no substitute for the compiled
#   per-rating SGD (on tests/test_svdpp.py's low-rank data, with the same lr, l2 and epochs, test RMSE 1.34
#   against 0.12 here, which is what failed on the H200 when "auto" sent it there), so it stays on the CPU.
# - EASE and popularity (the "closed" engine): one Gram matrix and one n_items x n_items solve, a count for
#   popularity; on ML-100K (1,682 items) or ml-latest-small (9.7K) that takes milliseconds to a second on the
#   CPU, about what creating the CUDA context costs, while ML-20M's 27K-item solve is where a GPU pays.
NEVER = 2**62
GPU_FROM_RATINGS: dict[tuple[str, str], int] = {
    ("cuda-sgd", "numba"): 1_000_000,
    ("gibbs-torch", "gibbs"): 1_000_000,
    ("closed", "closed"): 1_000_000,
    ("torch", "svdpp"): NEVER,
}


def gpu_pays_off(gpu_engine: str, cpu_engine: str, n_ratings: int) -> bool:
    """Whether training on the GPU with ``gpu_engine`` is expected to beat ``cpu_engine`` on the CPU."""
    return n_ratings >= GPU_FROM_RATINGS.get((gpu_engine, cpu_engine), 0)


# Below this many training ratings the compiled CPU samplers and SGD kernels that would race or gain nothing
# run on one thread unless told otherwise. Measured on 2 cores by bench/gibbs_threads.py: Bayesian MF on ML-100K
# u1 (80K ratings) fits in 7.5 s on one thread and 14.5 s on two (thread wake-ups and spinning pools cost more
# than the parallel kernels save), while on 1M ratings a sweep takes 286 ms on two against 432 ms on one.
PARALLEL_FROM_RATINGS = 500_000


def default_cpu_threads(n_ratings: int) -> int:
    """Threads for a CPU engine whose run names none: one for small data, every core Numba may use for large."""
    if n_ratings < PARALLEL_FROM_RATINGS:
        return 1
    import numba  # here, not at the top: choosing a device must not cost numba's import

    return numba.config.NUMBA_NUM_THREADS


# The torch engine's CPU threads (bench/torch_threads.py; BENCHMARKS.md, "Torch engine threads"). Torch's OpenMP
# threads spin at every barrier, so a second thread that has no idle core to run on does not help a little, it
# collapses the run: on this 2-core machine with other programs busy, deep MF on ML-100K u1 took 0.82 s an epoch
# on two threads against 0.08 s on one, NeuMF 13.4 s against 0.5 s, and on 1M ratings two threads ran past 150 s
# where one took 4-10 s. With a core idle, two threads ran deep MF about twice as fast (1.2M vs 0.6M ratings/s,
# load 2.2). Below TORCH_PARALLEL_FROM_RATINGS an epoch is at most about a second on one thread, so the most a
# second core could save is a few seconds a run while the risk is ten times that: one thread. From there on the
# run takes the cores that are idle when it starts (at least one).
TORCH_PARALLEL_FROM_RATINGS = 1_000_000
_IDLE_SAMPLE_SECONDS = 0.1


def idle_cores(sample_seconds: float = _IDLE_SAMPLE_SECONDS) -> float | None:
    """How many cores no program is using right now: the machine's idle share over a short sleep, from
    /proc/stat (Linux), times the cores this process may run on. None where that cannot be read."""
    def snapshot() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as stat:
            values = [int(v) for v in stat.readline().split()[1:9]]  # user .. steal of the "cpu" line
        return sum(values), values[3] + values[4]  # all ticks, idle + iowait ticks

    try:
        total_before, idle_before = snapshot()
        time.sleep(sample_seconds)
        total_after, idle_after = snapshot()
    except (OSError, ValueError, IndexError):
        return None
    if total_after <= total_before:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return cores * (idle_after - idle_before) / (total_after - total_before)


def default_torch_threads(n_ratings: int) -> int:
    """Threads for the torch engine (and the torch side of every CPU run) when the run names none.

    One below ``TORCH_PARALLEL_FROM_RATINGS`` training ratings; from there on the cores idle at the start (see
    ``idle_cores``), at most torch's own count and at least one.
    """
    if n_ratings < TORCH_PARALLEL_FROM_RATINGS:
        return 1
    idle = idle_cores()
    if idle is None:
        return 1
    return max(1, min(torch.get_num_threads(), round(idle)))
