"""Choose the torch device (explicit argument > $DEEPMF_DEVICE > cuda if present > cpu) and CPU thread counts."""

from __future__ import annotations

import os

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
    name = (device or "auto").strip().lower()
    if name == "auto":
        name = os.environ.get("DEEPMF_DEVICE", "auto").strip().lower() or "auto"
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"unknown device {device!r}: use cpu, cuda, cuda:N or auto") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} requested but CUDA is not available on this machine")
    if resolved.type not in ("cpu", "cuda"):
        raise ConfigError(f"unsupported device {name!r}: use cpu, cuda, cuda:N or auto")
    return resolved


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
