"""Engine "cuda-sgd": lock-free (Hogwild!) SGD for biased MF on a CUDA GPU, one Triton kernel per epoch.

Same model, update rule and saved file as the numba CPU engine (training/engines/numba_mf.py)::

    e    = r - (mu + b_u + b_i + p_u . q_i)
    b_u += lr (e - reg b_u)          b_i += lr (e - reg b_i)
    p_u += lr (e q_i - reg p_u)      q_i += lr (e p_u_old - reg q_i)

with ``mu`` fixed at the training mean, ``lr = config.lr`` and ``reg = config.l2``. The kernel writes straight
into the MF model's parameter tensors on the GPU, so a model trained here saves and loads like any other.

**Why Triton, not numba-cuda.** The work per rating is a gather of two rows of k floats, a dot product (a
reduction over k), and a scatter of the two updated rows. Coalescing wants the lanes of a warp spread over k
(a row is 256 contiguous bytes at k=64), which with numba-cuda means a warp per rating and a hand-written
warp-shuffle reduction; numba's CUDA simulator lacks shuffles, so CI would test a different reduction from the
one that runs. One thread per rating looping over k would run in the simulator but makes each warp load touch
32 scattered rows. Triton expresses exactly the tile we want, ``R`` ratings x ``k`` factors, row-major:
its compiler lays the lanes along k (16-byte vector loads, coalesced rows) and emits the reduction itself,
and its interpreter (``TRITON_INTERPRET=1``) executes the same tile program on the CPU with numpy, so the
tests run the very kernel the GPU runs, reduction included. Triton also takes torch tensors as they are (no
array-interface wrapping) and launches on torch's current stream, and it ships with CUDA builds of torch.

**Parallelism.** ``programs`` persistent programs each walk every ``programs``-th tile of ``R`` consecutive
shuffled ratings, so about ``programs x R`` ratings are in flight at once. Updates race without locks
(Hogwild!, as cuMF_SGD on GPUs): two in-flight ratings of one user both read the old row and one write
wins. Staleness grows with the ratings in flight relative to the rows they hit, so the in-flight count is set
from the data: about ``min(n_users, n_items) / ROWS_PER_RATING_IN_FLIGHT`` (ML-100K u1: 96; ML-20M-sized:
about 3,300, which should keep an H200 busy since every rating costs only a few hundred bytes of traffic,
most of it from L2). On a 60 x 50 table, a quarter of the smaller table in flight cost 0.04 of test RMSE
against the serial pass and an eighth 0.02 (means over three seeds, tests/test_cuda_sgd.py's data); the
divisor is provisional until ``bench/gpu.py`` (which sweeps it) has measured RMSE and speed on a real
GPU. With one program and ``R = 1`` the kernel is exactly the serial update (tests compare it with the numba
engine's serial pass).

**Not SVD++.** SVD++'s update is not this kernel's shape: each user's implicit sum is built once from all
his items, his ratings are then updated in sequence against it, and his items' implicit rows get one
accumulated step (training/engines/numba_svdpp.py), i.e. one program per user walking a variable-length
segment, not independent ratings. It stays on the numba engine (``--device auto`` keeps it there).

**Per epoch.** ``torch.randperm`` on the device (the engine's own generator, seeded by ``config.seed`` and
saved in checkpoints) shuffles the resident ratings, one launch runs the epoch, and each program writes its
squared-error sum to its own slot: the only host sync is reading that sum at the epoch's end. Runs with more
than one program are not bit-reproducible on a GPU (the races depend on timing); the interpreter runs
programs one after another, so there they are.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch

from deepmf.errors import ConfigError
from deepmf.training.engines import CUDA_SGD_MAX_FACTORS, runs_on

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.base import RatingModel
    from deepmf.training.config import TrainConfig

# In-flight ratings = min(n_users, n_items) / this (see the module docstring); provisional until measured.
ROWS_PER_RATING_IN_FLIGHT = 8
MF_PARAMETERS = ("user_factors", "item_factors", "user_bias", "item_bias", "global_bias")


try:  # Triton ships with CUDA builds of torch; without it this engine is unavailable, nothing else is
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - depends on the install
    triton = None


if triton is not None:

    @triton.jit(do_not_specialize=["n"])
    def mf_sgd_epoch(users, items, ratings, n, user_factors, item_factors, user_bias, item_bias, mu, lr, reg,
                     sse, K: tl.constexpr, KP: tl.constexpr, R: tl.constexpr):  # pragma: no cover - compiled
        """One Hogwild! SGD pass; program ``pid`` takes tiles pid, pid + programs, ... of R ratings."""
        pid = tl.program_id(0)
        programs = tl.num_programs(0)
        cols = tl.arange(0, KP)
        col_ok = cols < K
        total = tl.zeros([R], dtype=tl.float32)
        for tile in range(pid, tl.cdiv(n, R), programs):
            rows = tile * R + tl.arange(0, R)
            ok = rows < n
            u = tl.load(users + rows, mask=ok, other=0).to(tl.int64)
            i = tl.load(items + rows, mask=ok, other=0).to(tl.int64)
            r = tl.load(ratings + rows, mask=ok, other=0.0)
            cell_ok = ok[:, None] & col_ok[None, :]
            p_at = user_factors + u[:, None] * K + cols[None, :]
            q_at = item_factors + i[:, None] * K + cols[None, :]
            p = tl.load(p_at, mask=cell_ok, other=0.0)
            q = tl.load(q_at, mask=cell_ok, other=0.0)
            bu = tl.load(user_bias + u, mask=ok, other=0.0)
            bi = tl.load(item_bias + i, mask=ok, other=0.0)
            err = tl.where(ok, r - (mu + bu + bi + tl.sum(p * q, axis=1)), 0.0)
            tl.store(user_bias + u, bu + lr * (err - reg * bu), mask=ok)
            tl.store(item_bias + i, bi + lr * (err - reg * bi), mask=ok)
            e = err[:, None]
            tl.store(p_at, p + lr * (e * q - reg * p), mask=cell_ok)
            tl.store(q_at, q + lr * (e * p - reg * q), mask=cell_ok)
            total += err * err
        tl.store(sse + pid, tl.sum(total, axis=0))


def tile_shape(factors: int) -> tuple[int, int, int]:
    """(k padded to a power of two, ratings per tile R, warps per program) for ``factors`` = k."""
    padded = 1 << max(0, math.ceil(math.log2(factors)))
    per_tile = max(1, min(32, 2048 // padded))  # about 2K floats per operand tile: 16 per thread at 4 warps
    return padded, per_tile, 4


def in_flight(n_users: int, n_items: int) -> int:
    """Ratings to keep in flight at once for tables of this size (see the module docstring)."""
    return max(1, min(n_users, n_items) // ROWS_PER_RATING_IN_FLIGHT)


class CudaSGDEngine:
    """Engine "cuda-sgd" (see the module docstring): options as the numba engine (lr, l2, seed).

    Args:
        model: a biased, unsquashed MF; moved to ``device`` and updated in place.
        train: the training ratings (copied to the device once).
        config: training options.
        device: a CUDA device (or the CPU under ``TRITON_INTERPRET=1``, for tests).

    Raises:
        ConfigError: the device cannot run it, Triton is missing, the model is not biased MF, or k exceeds
            CUDA_SGD_MAX_FACTORS (options it cannot honour are refused by ``select_engine``'s table).
    """

    name = "cuda-sgd"

    def __init__(self, model: RatingModel, train: Ratings, config: TrainConfig, device: torch.device) -> None:
        device = torch.device(device)
        if not runs_on(self.name, device):
            raise ConfigError(f"the cuda-sgd engine runs on cuda, not {device}")
        missing = [name for name in MF_PARAMETERS if getattr(model, name, None) is None]
        if missing or getattr(getattr(model, "config", None), "sigmoid", False):
            raise ConfigError(f"the cuda-sgd engine trains biased MF only; model {getattr(model, 'name', model)!r} "
                              f"is not (no {', '.join(missing) or 'unsquashed output'})")
        if len(train) == 0:
            raise ConfigError("no training ratings")
        factors = model.user_factors.weight.shape[1]
        if factors > CUDA_SGD_MAX_FACTORS:  # one tile holds a whole row (k padded to a power of two)
            raise ConfigError(f"the cuda-sgd engine handles up to {CUDA_SGD_MAX_FACTORS} factors, got {factors}: "
                              f"use the numba or torch engine")
        if triton is None:
            raise ConfigError("the cuda-sgd engine needs Triton (it ships with CUDA builds of torch): "
                              "pip install triton")
        self.model = model.to(device)
        for name in MF_PARAMETERS[:4]:
            weight = getattr(model, name).weight
            if weight.dtype != torch.float32 or not weight.is_contiguous():
                weight.data = weight.data.to(torch.float32).contiguous()
        self.device = device
        self.lr = float(config.lr)
        self.reg = float(config.l2)
        self.n = len(train)
        # int32 indices: half the bytes of int64 for the one stream the kernel reads per rating.
        self.users = torch.from_numpy(train.users.astype("int32")).to(device)
        self.items = torch.from_numpy(train.items.astype("int32")).to(device)
        self.ratings = torch.from_numpy(train.ratings.astype("float32")).to(device)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(config.seed)
        self.padded, per_tile, self.warps = tile_shape(factors)
        flight = in_flight(model.user_factors.weight.shape[0], model.item_factors.weight.shape[0])
        # A tile's ratings are in flight together too: on tiny tables it shrinks to the in-flight budget.
        self.per_tile = min(per_tile, 1 << (flight.bit_length() - 1))
        self.programs = max(1, min(flight // self.per_tile, -(-self.n // self.per_tile)))
        self.sse = torch.zeros(self.programs, dtype=torch.float32, device=device)
        # Compile (or load from Triton's cache) now, so epoch timings measure training only.
        self._launch(self.users[:0], self.items[:0], self.ratings[:0], 1, self.per_tile)

    def _launch(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor, programs: int,
                per_tile: int, warps: int | None = None) -> torch.Tensor:
        model = self.model
        sse = self.sse[:programs]
        mf_sgd_epoch[(programs,)](
            users, items, ratings, users.shape[0], model.user_factors.weight.data, model.item_factors.weight.data,
            model.user_bias.weight.data, model.item_bias.weight.data, float(model.global_bias.detach()),
            self.lr, self.reg, sse, K=model.user_factors.weight.shape[1], KP=self.padded, R=per_tile,
            num_warps=warps or self.warps)
        return sse

    def train_epoch(self, epoch: int, order: torch.Tensor | None = None) -> float:
        """One shuffled Hogwild! pass; returns the RMSE of the errors met during the pass.

        Args:
            epoch: epoch number (the shuffle comes from the engine's generator, not from this number).
            order: only for exact comparisons with another engine: visit the training rows in exactly this
                order, serially (one program, one rating per tile).
        """
        if order is None:
            perm = torch.randperm(self.n, generator=self.generator, device=self.device)
            programs, per_tile = self.programs, self.per_tile
        else:
            perm = torch.as_tensor(order, device=self.device)
            if perm.ndim != 1 or perm.shape[0] != self.n:
                raise ConfigError(f"order must list all {self.n} training rows, got shape {tuple(perm.shape)}")
            programs, per_tile = 1, 1
        # One warp for the serial pass: its instructions run in order, so a row stored for one rating is what
        # the next rating's load sees (with several warps, one could run ahead to the next tile's loads).
        warps = 1 if order is not None else None
        sse = self._launch(self.users[perm], self.items[perm], self.ratings[perm], programs, per_tile, warps)
        rmse = math.sqrt(float(sse.double().sum()) / self.n)
        if not math.isfinite(rmse):
            raise ConfigError(f"training diverged in epoch {epoch} (error is NaN or infinite): "
                              f"lower the learning rate (now {self.lr})")
        return rmse

    def state_dict(self) -> dict[str, Any]:
        """The shuffle generator's state, so a resumed run continues the same sequence of orders."""
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"].cpu())
