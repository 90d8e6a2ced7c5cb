"""How much memory is free, and refusing work that would not fit before anything is allocated.

A model of ``--factors 10000000`` on ML-100K needs 420 GB to train; without this check the allocator fails
after seconds with a C++ message, or the machine swaps. ``allocation_guard`` watches the tensor factories
(``torch.empty``, ``zeros``, ...) while a model is built and refuses the first table that would take the
running total past the free memory, before it is allocated. (Building on PyTorch's meta device would give the
sizes without allocating, but its first use imports ``torch._dynamo``: seconds on every run.) The training
figure counts weights, gradients and the optimizer's per-weight moments, not activations or batches.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from deepmf.errors import ResourceError

# Per-weight copies kept by each optimizer besides the weight and its gradient.
_OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "sparse_adam": 2, "rmsprop": 2, "adagrad": 1, "sgd": 1}


def _meminfo_available() -> int | None:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return None


def _cgroup_available() -> int | None:
    """Room left under a container's memory limit (cgroup v2, then v1), or None without a limit."""
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        with contextlib.suppress(OSError, ValueError):
            limit = Path(limit_file).read_text().strip()
            if limit == "max" or int(limit) >= 1 << 60:  # v1 says "no limit" with a huge number
                return None
            return max(0, int(limit) - int(Path(usage_file).read_text().strip()))
    return None


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Bytes that can still be allocated on ``device`` (None when unknown, e.g. on MPS).

    CPU: the kernel's MemAvailable, capped by the container's cgroup limit. CUDA: free device memory.
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type != "cpu":
        return None
    figures = [value for value in (_meminfo_available(), _cgroup_available()) if value is not None]
    return min(figures) if figures else None


def format_bytes(n: float) -> str:
    """Bytes in the largest fitting unit: "512 B", "3.4 MB", "105.1 GB" (decimal units, as disks and RAM)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.4g} PB"


def require(need: int, what: str, device: torch.device | str = "cpu") -> None:
    """Raise ResourceError when ``need`` bytes would not fit in the memory available on ``device``.

    Args:
        need: bytes the work would allocate.
        what: names the work in the message ("model mf with factors=10000000").
        device: where it would be allocated.
    """
    available = available_bytes(device)
    if available is not None and need > available:
        where = "" if torch.device(device).type == "cpu" else f" on {device}"
        raise ResourceError(f"{what} needs about {format_bytes(need)} of memory, but only "
                            f"{format_bytes(available)} is available{where}; nothing was allocated")


def training_copies(optimizer: str | None) -> int:
    """Copies of each weight that training keeps: the weight, its gradient and the optimizer's moments."""
    return 1 if optimizer is None else 2 + _OPTIMIZER_SLOTS.get(optimizer, 2)


# Factories whose first argument(s) give a shape: everything a model's __init__ allocates tables with.
_SHAPED_FACTORIES = (torch.empty, torch.zeros, torch.ones, torch.rand, torch.randn, torch.full)


def _requested_bytes(func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    size = kwargs.get("size")
    if size is None and args:
        size = args[0] if func is torch.full or isinstance(args[0], (tuple, list, torch.Size)) else args
    if size is None or isinstance(size, torch.Tensor):
        return 0
    try:
        numel = math.prod(int(n) for n in size)
    except (TypeError, ValueError):
        return 0  # not a shape: torch itself refuses it
    dtype = kwargs.get("dtype") or torch.get_default_dtype()
    return numel * dtype.itemsize


class _Guard(TorchFunctionMode):
    """Counts the bytes the shaped factories are asked for; the first call past a limit raises its error."""

    def __init__(self, copies: int, limits: list[tuple[int, Callable[[int], Exception]]]) -> None:
        super().__init__()
        self.copies, self.limits = copies, limits
        self.total = 0

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func in _SHAPED_FACTORIES:
            self.total += _requested_bytes(func, args, kwargs)
            for limit, error in self.limits:
                if self.total * self.copies > limit:
                    raise error(self.total * self.copies)
        return func(*args, **kwargs)


@contextlib.contextmanager
def allocation_guard(what: str, *, optimizer: str | None = None, device: torch.device | str = "cpu",
                     limit: tuple[int, Callable[[int], Exception]] | None = None) -> Iterator[None]:
    """Inside the block, refuse the tensor allocation that would not fit, before it is made.

    Args:
        what: names the work in the message ("training model mf with factors=10000000").
        optimizer: for training, the optimizer whose per-weight state is counted too (None: weights only).
        device: where the tensors will live (free memory is read once, on entry).
        limit: a further ``(bytes, error)``: past ``bytes`` the block raises ``error(bytes_needed)`` (a model
            file's config may not allocate more than the file holds).

    Raises:
        ResourceError: past the free memory.
    """
    where = "" if torch.device(device).type == "cpu" else f" on {device}"
    limits = [] if limit is None else [limit]
    budget = available_bytes(device)
    if budget is not None:
        limits.append((budget, lambda need: ResourceError(
            f"{what} needs at least {format_bytes(need)} of memory, but only {format_bytes(budget)} is "
            f"available{where}; refused before allocating it")))
    with _Guard(training_copies(optimizer), limits):
        yield
