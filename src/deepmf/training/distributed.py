"""Data-parallel training under ``torchrun``: the process environment, the process group, each rank's shard.

One entry point serves one process and many (as nanoGPT's ``train.py``): ``dist_env()`` reads torchrun's
``RANK``/``LOCAL_RANK``/``WORLD_SIZE``/``LOCAL_WORLD_SIZE``; without them the run is one process, rank 0.
``process_group`` joins the group (gloo on CPU, NCCL on CUDA) with a timeout, so a rank whose peer died stops
with a ``DistributedError`` instead of hanging; ``current_group()`` is what the Trainer consults.

Sharding keeps the global batch whatever the world size: every rank draws the same permutation of the epoch
(one generator, one seed, on the device), cuts each global batch of ``batch_size`` ratings into ``world_size``
contiguous pieces and trains on its own. DDP averages the ranks' gradients, and each rank's loss is weighted by
its share of the batch, so the step is the gradient of the global batch's mean loss, as in one process.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import os
import re
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from deepmf.device import resolve_device
from deepmf.errors import ConfigError, DistributedError

# Seconds a collective may wait for the other ranks. Rank 0 writes the checkpoint while the others already
# wait at the next epoch's first all-reduce, so this must exceed the time to write one checkpoint.
DEFAULT_TIMEOUT = 600.0
_ENV_KEYS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")
_MAX_TIMEOUT = 86_400.0 * 365  # a year; datetime.timedelta overflows past ~2.7e6 years, torch's C++ sooner


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a torchrun job (rank 0 of 1 outside torchrun).

    Attributes:
        rank: global rank.
        local_rank: rank on this machine (the CUDA device index).
        world_size: processes in the job.
        local_world_size: processes on this machine (they share its cores).
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 prints, evaluates on the test set, writes checkpoints, the model and the report."""
        return self.rank == 0


def dist_env() -> DistEnv:
    """The torchrun environment of this process.

    Raises:
        ConfigError: a torchrun variable is not an integer or the ranks are out of range.
    """
    values: dict[str, int] = {}
    for key, default in zip(_ENV_KEYS, (0, 0, 1, None), strict=True):
        text = os.environ.get(key, "").strip()
        if not text:
            values[key] = values["WORLD_SIZE"] if default is None else default
            continue
        try:
            values[key] = int(text)
        except ValueError:
            raise ConfigError(f"environment variable {key}={text!r} is not an integer") from None
    env = DistEnv(values["RANK"], values["LOCAL_RANK"], values["WORLD_SIZE"], values["LOCAL_WORLD_SIZE"])
    if env.world_size < 1 or not 0 <= env.rank < env.world_size or not 0 <= env.local_rank < env.world_size:
        raise ConfigError(f"inconsistent torchrun environment: RANK={env.rank}, LOCAL_RANK={env.local_rank}, "
                          f"WORLD_SIZE={env.world_size}")
    return env


def rank_device(device: torch.device, env: DistEnv) -> torch.device:
    """The device of this rank: ``cuda`` without an index means ``cuda:LOCAL_RANK`` in a multi-process job."""
    if device.type == "cuda" and device.index is None and env.world_size > 1:
        return torch.device("cuda", env.local_rank)
    return device


def rank_seed(seed: int, rank: int, epoch: int) -> int:
    """A seed for rank ``rank``'s own random stream (dropout), from the run's seed and the epoch it starts at."""
    return int(np.random.SeedSequence((seed, rank, epoch)).generate_state(1)[0])


def cpu_threads(env: DistEnv) -> int:
    """Torch threads per rank when the run names none: this machine's cores shared by its ranks."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // env.local_world_size)


@contextlib.contextmanager
def process_group(device: str | torch.device | None = None,
                  timeout: float = DEFAULT_TIMEOUT) -> Iterator[DistEnv]:
    """Join torchrun's process group for the block (nothing to join in a one-process run).

    Args:
        device: the training device ("auto", "cpu", "cuda", ...): NCCL for CUDA, gloo for the CPU.
        timeout: seconds a collective waits for the other ranks before failing.

    Raises:
        ConfigError: a bad environment or timeout.
        DistributedError: the group could not be formed, or a collective failed (a peer died or hung).
    """
    # Checked in one process too: an option is never silently accepted because it had nothing to act on.
    if not (isinstance(timeout, (int, float)) and 0 < timeout <= _MAX_TIMEOUT):
        raise ConfigError(f"--dist-timeout must be a positive number of seconds up to {_MAX_TIMEOUT:g}, "
                          f"got {timeout}")
    env = dist_env()
    if env.world_size == 1:
        yield env
        return
    for key in ("MASTER_ADDR", "MASTER_PORT"):  # torchrun sets both; torch's own error is a traceback
        if not os.environ.get(key, "").strip():
            raise ConfigError(f"WORLD_SIZE={env.world_size} is set but {key} is not: start a data-parallel job "
                              "with torchrun (torchrun --nproc-per-node N -m deepmf train ...)")
    resolved = rank_device(resolve_device(device), env)
    if resolved.type == "cuda":
        torch.cuda.set_device(resolved)
    backend = "nccl" if resolved.type == "cuda" else "gloo"
    with _stopped_by_launcher(env), _as_distributed_error(env):
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout))
        try:
            yield env
        finally:
            gc.collect()  # free the DDP wrappers (their reducers hold the group) before the group goes
            dist.destroy_process_group()


@contextlib.contextmanager
def _stopped_by_launcher(env: DistEnv) -> Iterator[None]:
    """Make torchrun's SIGTERM (sent to the survivors when one process fails) an error with a clear line."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise DistributedError(f"stopped by the launcher: another process of this {env.world_size}-process job "
                               "failed; rerun the same command with --resume to continue from the last complete "
                               "epoch")

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _as_distributed_error(env: DistEnv) -> Iterator[None]:
    """Turn a failed collective (a dead or hung peer, a broken rendezvous) into one clear line."""
    try:
        yield
    except (dist.DistError, RuntimeError) as exc:
        if isinstance(exc, DistributedError) or not _is_collective_failure(exc):
            raise
        detail = _first_sentence(str(exc)) or type(exc).__name__
        raise DistributedError(
            f"the {env.world_size}-process group failed, probably because another process of the job stopped "
            f"({detail}); rerun the same command with --resume to continue from the last complete "
            "epoch") from None


def _first_sentence(message: str) -> str:
    """The gist of a backend's message: without its ``[source.cc:123]`` prefix, up to the first full stop."""
    text = message.strip().splitlines()[0] if message.strip() else ""
    text = re.sub(r"^\[[^\]]*\]\s*", "", text)
    return text.split(". ")[0].rstrip(".")[:200]


def _is_collective_failure(exc: BaseException) -> bool:
    # Gloo reports a dead peer as a RuntimeError naming its transport; the others raise DistError subclasses.
    if isinstance(exc, dist.DistError):
        return True
    text = str(exc).lower()
    return any(word in text for word in ("gloo", "nccl", "connection", "timed out", "timeout", "socket"))


class LocalBatch(NamedTuple):
    """One step of a rank: a slice of its shard of the epoch.

    Attributes:
        start: first position in the rank's shard.
        end: one past the last.
        weight: loss multiplier (the rank's share of the global batch times the world size), so that DDP's
            mean of the ranks' gradients is the gradient of the global batch's mean loss.
        scored: whether this rank counts the batch's squared error (a batch smaller than the world is
            trained by every rank whole, and counted once).
    """

    start: int
    end: int
    weight: float
    scored: bool


def shard_epoch(n: int, batch_size: int, rank: int, world_size: int) -> tuple[torch.Tensor, list[LocalBatch]]:
    """Positions in the epoch's permutation that ``rank`` trains on, and its steps over them.

    Global batch ``b`` covers positions ``[b * batch_size, (b + 1) * batch_size)``; rank ``r`` takes the
    ``r``-th of ``world_size`` near-equal contiguous pieces of it. The ranks' pieces are disjoint and cover
    the epoch, except that a final batch with fewer ratings than ranks is trained whole by every rank (their
    gradients are then equal and their mean is the batch's).

    Returns:
        (positions (int64, on the CPU), steps): ``permutation[positions]`` is the rank's shard in step order.

    Raises:
        ConfigError: ``batch_size`` is smaller than ``world_size`` (some rank would have nothing to train on).
    """
    if batch_size < world_size:
        raise ConfigError(f"batch size {batch_size} is smaller than the {world_size} processes that share each "
                          "batch: raise --batch-size or use fewer processes")
    full, tail = divmod(n, batch_size)
    low, high = rank * batch_size // world_size, (rank + 1) * batch_size // world_size
    starts = torch.arange(full, dtype=torch.int64) * batch_size
    pieces = [(starts[:, None] + torch.arange(low, high, dtype=torch.int64)).reshape(-1)]
    share = high - low
    steps = [LocalBatch(b * share, (b + 1) * share, share * world_size / batch_size, True) for b in range(full)]
    if tail:
        base = full * batch_size
        if tail >= world_size:
            tail_low, tail_high = tail * rank // world_size, tail * (rank + 1) // world_size
            weight, scored = (tail_high - tail_low) * world_size / tail, True
        else:
            tail_low, tail_high, weight, scored = 0, tail, 1.0, rank == 0
        pieces.append(torch.arange(base + tail_low, base + tail_high, dtype=torch.int64))
        offset = full * share
        steps.append(LocalBatch(offset, offset + tail_high - tail_low, weight, scored))
    return torch.cat(pieces), steps


def epoch_steps(permutation: torch.Tensor, batch_size: int,
                group: DataParallel | None) -> tuple[torch.Tensor, list[LocalBatch]]:
    """The ratings (``permutation``'s shard) this process trains on in an epoch, and its steps over them.

    One process trains the whole permutation in consecutive batches; a rank of ``group`` its shard.
    """
    if group is not None:
        return group.shard(permutation, batch_size)
    n = permutation.shape[0]
    return permutation, [LocalBatch(start, min(start + batch_size, n), 1.0, True)
                         for start in range(0, n, batch_size)]


@dataclass(frozen=True)
class DataParallel:
    """The process group a Trainer trains in, and the collectives it needs (one or two per epoch).

    Attributes:
        env: this process's rank and world.
        device: this rank's training device.
    """

    env: DistEnv
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.env.is_main

    def wrap(self, module: nn.Module) -> nn.Module:
        """``module`` under DistributedDataParallel: its backward averages the ranks' gradients.

        Buffers are not re-broadcast before every forward: side-feature tables never change, and only rank 0's
        batch-norm statistics are kept (rank 0 validates and saves).

        Raises:
            ConfigError: sparse embedding gradients under NCCL, which reduces dense tensors only.
        """
        from torch.nn.parallel import DistributedDataParallel

        sparse = any(isinstance(m, nn.Embedding) and m.sparse for m in module.modules())
        if sparse and dist.get_backend() == "nccl":
            raise ConfigError("NCCL cannot average sparse gradients: on CUDA use a dense optimizer "
                              "(adam, the default; not sparse_adam or sparse=True)")
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=device_ids, forward_sync_buffers=False)

    def shard(self, permutation: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, list[LocalBatch]]:
        """This rank's shard of an epoch's ``permutation`` and its steps (see ``shard_epoch``)."""
        positions, steps = shard_epoch(permutation.shape[0], batch_size, self.env.rank, self.env.world_size)
        return permutation[positions.to(permutation.device)], steps

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        """The sum of ``value`` over the ranks (a new tensor, the same on every rank)."""
        total = value.detach().clone()
        dist.all_reduce(total)
        return total

    def broadcast_float(self, value: float | None) -> float:
        """Rank 0's ``value`` on every rank (other ranks pass anything)."""
        box = torch.tensor([value if value is not None else 0.0], dtype=torch.float64, device=self.device)
        dist.broadcast(box, src=0)
        return float(box.item())

    def check_same(self, text: str, what: str) -> None:
        """Raise ConfigError on every rank unless every rank passes the same ``text``.

        Args:
            text: the value to compare (e.g. the training data's fingerprint).
            what: what it is, for the message.
        """
        code = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=7).digest(), "big")
        box = torch.tensor([code, -code], dtype=torch.int64, device=self.device)
        dist.all_reduce(box, op=dist.ReduceOp.MAX)
        if int(box[0]) != -int(box[1]):
            raise ConfigError(f"the {self.env.world_size} processes of this job see different {what}")


def current_group(device: torch.device) -> DataParallel | None:
    """The data-parallel group this process trains in on ``device``, or None for a one-process run.

    Raises:
        ConfigError: the group's backend cannot reduce tensors on ``device`` (NCCL with a CPU device).
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return None
    rank, world_size = dist.get_rank(), dist.get_world_size()
    launched = dist_env()  # torchrun's LOCAL_* variables; a group formed some other way counts as one machine
    env = (DistEnv(rank, launched.local_rank, world_size, launched.local_world_size)
           if launched.world_size == world_size else DistEnv(rank, rank, world_size, world_size))
    if dist.get_backend() == "nccl" and device.type != "cuda":
        raise ConfigError(f"the process group uses NCCL, which cannot train on {device}: use --device cuda")
    return DataParallel(env, rank_device(device, env))


def is_main() -> bool:
    """Whether this process is rank 0 (always, outside a process group)."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
