"""Compiled CPU engine for biased MF: lock-free parallel SGD (Hogwild!) written with Numba.

The model is Surprise's biased SVD, trained with its per-rating update rule::

    e    = r - (mu + b_u + b_i + p_u . q_i)
    b_u += lr (e - reg b_u)          b_i += lr (e - reg b_i)
    p_u += lr (e q_i - reg p_u)      q_i += lr (e p_u_old - reg q_i)

``mu`` (the model's ``global_bias``) stays fixed, as in Surprise: the MF model starts it at the training mean.

The engine writes straight into the MF model's parameter tensors through ``tensor.detach().numpy()`` views,
so a model trained here is the same ``nn.Module`` (and the same saved file) as one trained by the torch
engine.

Shuffling is cheap by design. A full ``np.random.permutation`` of 20M rows plus the gathers it needs costs
about a third of an epoch, so the ratings are permuted once, at construction, into a private copy; every
epoch then visits fixed-size blocks of that copy in a fresh random block order, and inside each block walks
a fresh random affine permutation ``j -> (a j + b) mod block`` (``a`` odd, block a power of two). Each epoch
thus sees a new order for the price of a few thousand random numbers, and every access stays inside one
L2-sized block. All randomness comes from one numpy Generator seeded by ``config.seed`` whose state is in
``state_dict``, so resuming with one thread reproduces an uninterrupted run bit for bit (with several
threads Hogwild! updates race by design).
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import torch
from numba import njit, prange

from deepmf.errors import ConfigError

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.base import RatingModel
    from deepmf.training.config import TrainConfig

# Numba's OpenMP layer keeps idle threads spinning; beside torch's own OpenMP pool, or on a busy machine, that
# made a 2-thread ML-100K fit 6x slower than 1 thread here. The workqueue layer sleeps instead. The layer is
# process-wide, so it is set before any parallel kernel runs; the user's NUMBA_THREADING_LAYER wins.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# 2**12 ratings x 12 bytes = 48 KiB of (user, item, rating) per block: fits L2, and enough blocks per thread
# (ML-100K u1 has 20) for the block order to matter.
BLOCK_BITS = 12

MF_PARAMETERS = ("user_factors", "item_factors", "user_bias", "item_bias", "global_bias")


@njit(fastmath=True, cache=True, inline="always")
def _sgd_step(u, i, r, user_factors, item_factors, user_bias, item_bias, mu, lr, reg):  # pragma: no cover
    """One SGD update for rating ``r`` of user ``u`` on item ``i``; returns the error before the update."""
    n_factors = user_factors.shape[1]
    dot = np.float32(0.0)
    for f in range(n_factors):
        dot += user_factors[u, f] * item_factors[i, f]
    err = r - (mu + user_bias[u] + item_bias[i] + dot)
    user_bias[u] += lr * (err - reg * user_bias[u])
    item_bias[i] += lr * (err - reg * item_bias[i])
    for f in range(n_factors):
        p = user_factors[u, f]
        q = item_factors[i, f]
        user_factors[u, f] = p + lr * (err * q - reg * p)
        item_factors[i, f] = q + lr * (err * p - reg * q)
    return err


@njit(parallel=True, fastmath=True, cache=True)
def sgd_epoch(users, items, ratings, block_order, block_mult, block_shift, block_bits, n_workers,
              user_factors, item_factors, user_bias, item_bias, mu, lr, reg):  # pragma: no cover
    """One Hogwild! epoch over blocks of ``(users, items, ratings)``; returns the summed squared error.

    Worker ``w`` takes blocks ``block_order[w], block_order[w + n_workers], ...`` and, inside block ``k``,
    visits offsets ``(block_mult[k] * j + block_shift[k]) mod 2**block_bits``; offsets past the end of the
    data (the last, partial block) are skipped. ``block_mult`` must be odd so the map is a permutation. With
    ``block_mult == 1``, ``block_shift == 0``, the identity block order and one worker the pass is sequential.
    """
    n = users.shape[0]
    size = 1 << block_bits
    mask = size - 1
    n_blocks = block_order.shape[0]
    sse = np.zeros(n_workers, dtype=np.float64)
    for w in prange(n_workers):
        local = 0.0
        for k in range(w, n_blocks, n_workers):
            block = block_order[k]
            start = block * size
            mult = block_mult[block]
            shift = block_shift[block]
            for j in range(size):
                idx = start + ((mult * j + shift) & mask)
                if idx < n:
                    err = _sgd_step(users[idx], items[idx], ratings[idx], user_factors, item_factors,
                                    user_bias, item_bias, mu, lr, reg)
                    local += err * err
        sse[w] = local
    return sse.sum()


def mf_arrays(model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.float32]:
    """Numpy views of a biased MF model's parameters, sharing the tensors' memory.

    Makes the parameter storage contiguous float32 first (a no-op for a freshly built model), so writes
    through the views land in the model.

    Returns:
        (user_factors, item_factors, user_bias, item_bias, global_bias as a float32 scalar).

    Raises:
        ConfigError: the model lacks the biased-MF parameters or they live off the CPU.
    """
    missing = [name for name in MF_PARAMETERS if getattr(model, name, None) is None]
    if missing:
        raise ConfigError(f"the numba engine trains biased MF only; model {getattr(model, 'name', model)!r} "
                          f"has no {', '.join(missing)}")
    views = []
    for name in MF_PARAMETERS[:4]:
        weight = getattr(model, name).weight
        if weight.device.type != "cpu":
            raise ConfigError(f"the numba engine runs on cpu, but {name} is on {weight.device}")
        if weight.dtype != torch.float32 or not weight.is_contiguous():
            weight.data = weight.data.to(torch.float32).contiguous()
        views.append(weight.detach().numpy())
    user_factors, item_factors, user_bias, item_bias = views
    mu = np.float32(model.global_bias.detach().cpu().float().item())
    return user_factors, item_factors, user_bias.reshape(-1), item_bias.reshape(-1), mu


class NumbaMFEngine:
    """Engine "numba": compiled lock-free parallel SGD for biased MF on CPU.

    Uses ``config.lr`` (learning rate), ``config.l2`` (regularization ``reg``), ``config.seed`` (shuffle) and
    ``config.threads`` (Numba threads; None = all cores). It always runs plain per-rating SGD, so
    ``optimizer``, ``momentum``, ``batch_size`` and ``sparse`` do not apply.

    Args:
        model: a biased regression MF (parameters ``user_factors``, ``item_factors``, ``user_bias``,
            ``item_bias``, ``global_bias``) on the CPU; updated in place.
        train: the training ratings.
        config: training options.
        device: must be the CPU.

    Raises:
        ConfigError: the device is not the CPU, the model is not biased MF, or an option the engine cannot
            honour is set (weight decay, a learning-rate schedule).
    """

    name = "numba"

    def __init__(self, model: RatingModel, train: Ratings, config: TrainConfig, device: torch.device) -> None:
        if torch.device(device).type != "cpu":
            raise ConfigError(f"the numba engine runs on cpu, not {device}")
        if config.weight_decay > 0:
            raise ConfigError("the numba engine regularizes with l2, not weight_decay: set weight_decay to 0")
        if config.lr_schedule != "none":
            raise ConfigError(f"the numba engine uses a constant learning rate; lr_schedule "
                              f"{config.lr_schedule!r} needs the torch engine")
        mf_arrays(model)  # validate the model now, not at the first epoch
        self.model = model
        self.train = train  # kept (not copied) only for train_epoch(order=...)
        self.lr = np.float32(config.lr)
        self.reg = np.float32(config.l2)
        self.threads = min(config.threads or numba.config.NUMBA_NUM_THREADS, numba.config.NUMBA_NUM_THREADS)
        self.rng = np.random.default_rng(config.seed)
        # One full permutation, once: training data often arrives sorted by user or time, and the per-epoch
        # block shuffle only reorders within and between blocks of this copy.
        order = self.rng.permutation(len(train)).astype(np.int32 if len(train) < 2**31 else np.int64)
        self.users = np.ascontiguousarray(train.users[order], dtype=np.int32)
        self.items = np.ascontiguousarray(train.items[order], dtype=np.int32)
        self.ratings = np.ascontiguousarray(train.ratings[order], dtype=np.float32)
        del order
        self.n_blocks = max(1, -(-len(self.users) >> BLOCK_BITS))
        self._compile()

    def _compile(self) -> None:
        """Compile (or load from numba's cache) the kernel now, so epoch timings measure training only."""
        user_factors, item_factors, user_bias, item_bias, mu = mf_arrays(self.model)
        empty = np.zeros(0, dtype=np.int64)
        sgd_epoch(self.users[:0], self.items[:0], self.ratings[:0], empty.astype(np.int32), empty, empty,
                  BLOCK_BITS, 1, user_factors, item_factors, user_bias, item_bias, mu, self.lr, self.reg)

    def train_epoch(self, epoch: int, order: np.ndarray | None = None) -> float:
        """Run one epoch of Hogwild! SGD in place; return the RMSE of the errors met during the pass.

        Args:
            epoch: epoch number (the shuffle comes from the engine's RNG, not from this number).
            order: only for exact comparisons with another engine: visit the training rows (indices into the
                ``train`` passed at construction) in exactly this order, sequentially in one thread.
        """
        user_factors, item_factors, user_bias, item_bias, mu = mf_arrays(self.model)
        if order is None:
            users, items, ratings = self.users, self.items, self.ratings
            block_order = self.rng.permutation(self.n_blocks).astype(np.int32)
            # Odd multipliers make j -> (a j + b) mod 2**BLOCK_BITS a permutation of each block.
            block_mult = (self.rng.integers(0, 1 << (BLOCK_BITS - 1), self.n_blocks) * 2 + 1).astype(np.int64)
            block_shift = self.rng.integers(0, 1 << BLOCK_BITS, self.n_blocks).astype(np.int64)
            workers = self.threads
        else:
            users, items, ratings = self._in_given_order(np.asarray(order))
            n_blocks = max(1, -(-len(users) >> BLOCK_BITS))
            block_order = np.arange(n_blocks, dtype=np.int32)
            block_mult = np.ones(n_blocks, dtype=np.int64)
            block_shift = np.zeros(n_blocks, dtype=np.int64)
            workers = 1
        numba.set_num_threads(workers)
        sse = sgd_epoch(users, items, ratings, block_order, block_mult, block_shift, BLOCK_BITS, workers,
                        user_factors, item_factors, user_bias, item_bias, mu, self.lr, self.reg)
        return float(np.sqrt(sse / max(len(users), 1)))

    def _in_given_order(self, order: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The rows of the original ``train`` in ``order`` (the private copy is shuffled)."""
        if order.ndim != 1 or len(order) != len(self.train):
            raise ConfigError(f"order must list all {len(self.train)} training rows, got shape {order.shape}")
        return (np.ascontiguousarray(self.train.users[order], dtype=np.int32),
                np.ascontiguousarray(self.train.items[order], dtype=np.int32),
                np.ascontiguousarray(self.train.ratings[order], dtype=np.float32))

    def state_dict(self) -> dict[str, Any]:
        """The shuffle RNG's state (a JSON string), so a resumed run continues the same sequence of orders."""
        return {"rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the shuffle RNG saved by ``state_dict``."""
        self.rng.bit_generator.state = json.loads(state["rng"])
