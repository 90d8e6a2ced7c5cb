"""Compiled CPU engine for biased MF: deterministic lock-free parallel SGD written with Numba.

The model is Surprise's biased SVD, trained with its per-rating update rule::

    e    = r - (mu + b_u + b_i + p_u . q_i)
    b_u += lr (e - reg b_u)          b_i += lr (e - reg b_i)
    p_u += lr (e q_i - reg p_u)      q_i += lr (e p_u_old - reg q_i)

``mu`` (the model's ``global_bias``) stays fixed, as in Surprise: the MF model starts it at the training mean.

The engine writes straight into the MF model's parameter tensors through ``tensor.detach().numpy()`` views,
so a model trained here is the same ``nn.Module`` (and the same saved file) as one trained by the torch
engine.

Parallelism is stratified SGD (DSGD, Gemulla et al. 2011) rather than Hogwild!: Hogwild! threads race on
shared rows, so two runs with two threads gave different models. Here users are cut into ``G`` groups and
items into ``G`` groups (``G`` = ``config.threads``, or the number of cores when it is None), each group
holding about the same number of ratings; the groups are drawn once from ``config.seed``. An epoch runs ``G``
sub-epochs; in sub-epoch ``s`` worker ``w`` trains on the ratings of user group ``w`` x item group
``(w + s) mod G``. Blocks of one sub-epoch share no user and no item, so workers never touch the same row and
need no locks, and the result depends only on the seed, the data and ``G``, never on thread timing. (It does
depend on ``G``: a run with ``threads=2`` differs from one with ``threads=1``, as a different update order
must. ``G`` is fixed by ``config.threads``, not by the cores present, so the same settings run the same
updates in the same order on any machine; the last bits may still differ between CPU types, since
``fastmath`` lets the compiler vectorise the dot product for the instruction set at hand.)

Shuffling is cheap by design. A full ``np.random.permutation`` of 20M rows plus the gathers it needs costs
about a third of an epoch, so the ratings are shuffled once, at construction, into a private copy grouped by
block; each block is cut into chunks of at most ``2**BLOCK_BITS`` ratings. Every epoch then visits each
block's chunks in a fresh random order and walks each chunk in a fresh random affine order
``j -> (a j + b) mod 2**m`` (``a`` odd, ``2**m`` the chunk's size rounded up to a power of two), and runs the
sub-epochs in a fresh random order. Each epoch thus sees a new order for the price of a few thousand random
numbers, and every access stays inside one L2-sized chunk. All randomness comes from one numpy Generator
seeded by ``config.seed`` whose state is in ``state_dict``, so a resumed run reproduces an uninterrupted one
bit for bit (with the same ``threads``).
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
from deepmf.training.engines.compiled import table_views

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.base import RatingModel
    from deepmf.training.config import TrainConfig

# Numba's OpenMP layer keeps idle threads spinning; beside torch's own OpenMP pool, or on a busy machine, that
# made a 2-thread ML-100K fit 6x slower than 1 thread here. The workqueue layer sleeps instead. The layer is
# process-wide, so it is set before any parallel kernel runs; the user's NUMBA_THREADING_LAYER wins.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

# 2**12 ratings x 12 bytes = 48 KiB of (user, item, rating) per chunk: fits L2, and enough chunks per block
# (ML-100K u1 has 5 per block with two groups) for the chunk order to matter.
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
def sgd_epoch(users, items, ratings, block_chunks, chunk_order, chunk_start, chunk_len, chunk_mult, chunk_shift,
              sub_epochs, user_factors, item_factors, user_bias, item_bias, mu, lr, reg):  # pragma: no cover
    """One stratified SGD epoch over ``(users, items, ratings)``; returns the summed squared error.

    With ``G = len(sub_epochs)`` groups, block ``(a, b)`` (user group ``a``, item group ``b``) owns the chunks
    ``chunk_order[block_chunks[a G + b]:block_chunks[a G + b + 1]]``, visited in that order. Sub-epoch ``t``
    runs the blocks ``(w, (w + sub_epochs[t]) mod G)`` for ``w = 0..G-1`` in parallel; they share no user and
    no item. Chunk ``c`` covers rows ``chunk_start[c] + o`` for ``o < chunk_len[c]``, walked as
    ``o = (chunk_mult[c] j + chunk_shift[c]) mod 2**m`` for ``j < 2**m``, the smallest power of two holding the
    chunk (``chunk_mult`` odd makes this a permutation; offsets past ``chunk_len`` are skipped). With one group,
    ``chunk_mult == 1`` and ``chunk_shift == 0`` the pass is sequential in row order.
    """
    n_groups = sub_epochs.shape[0]
    sse = np.zeros(n_groups, dtype=np.float64)
    for t in range(n_groups):
        offset = sub_epochs[t]
        for w in prange(n_groups):
            block = w * n_groups + (w + offset) % n_groups
            local = 0.0
            for k in range(block_chunks[block], block_chunks[block + 1]):
                chunk = chunk_order[k]
                start = chunk_start[chunk]
                length = chunk_len[chunk]
                mult = chunk_mult[chunk]
                shift = chunk_shift[chunk]
                size = 1
                while size < length:
                    size <<= 1
                mask = size - 1
                for j in range(size):
                    off = (mult * j + shift) & mask
                    if off < length:
                        idx = start + off
                        err = _sgd_step(users[idx], items[idx], ratings[idx], user_factors, item_factors,
                                        user_bias, item_bias, mu, lr, reg)
                        local += err * err
            sse[w] += local
    return sse.sum()


@njit(cache=True)
def _scatter_into_blocks(order, users, items, ratings, user_group, item_group, n_groups, out_users, out_items,
                         out_ratings, block_ptr):  # pragma: no cover - compiled
    """Copy rows ``order[0], order[1], ...`` into ``out_*`` grouped by block, keeping that order in each block.

    ``block_ptr`` (length ``G*G + 1``) receives each block's start; one counting pass, one scatter pass, no
    temporary the size of the data.
    """
    block_ptr[:] = 0
    for r in range(users.shape[0]):
        block_ptr[user_group[users[r]] * n_groups + item_group[items[r]] + 1] += 1
    for b in range(1, block_ptr.shape[0]):
        block_ptr[b] += block_ptr[b - 1]
    fill = block_ptr[:-1].copy()
    for j in range(order.shape[0]):
        r = order[j]
        block = user_group[users[r]] * n_groups + item_group[items[r]]
        dest = fill[block]
        fill[block] = dest + 1
        out_users[dest] = users[r]
        out_items[dest] = items[r]
        out_ratings[dest] = ratings[r]


def balanced_groups(counts: np.ndarray, n_groups: int, rng: np.random.Generator) -> np.ndarray:
    """Cut ``len(counts)`` users (or items) into ``n_groups`` groups of about equal total ``counts``.

    The entities are taken in a random order and cut where the running total crosses a multiple of
    ``total / n_groups``, so each group is within one entity's count of its share.

    Returns:
        int32 group of each entity.
    """
    counts = np.asarray(counts, dtype=np.int64)
    order = rng.permutation(len(counts))
    before = np.cumsum(counts[order]) - counts[order]  # ratings ahead of each entity in the random order
    groups = np.empty(len(counts), dtype=np.int32)
    groups[order] = np.minimum(before * n_groups // max(int(counts.sum()), 1), n_groups - 1)
    return groups


def _chunks(block_ptr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut each block ``[block_ptr[b], block_ptr[b + 1])`` into chunks of at most ``2**BLOCK_BITS`` rows.

    Returns:
        (block_chunks: each block's first chunk, length n_blocks + 1; chunk_block; chunk_start; chunk_len).
    """
    size = 1 << BLOCK_BITS
    lengths = np.diff(block_ptr)
    per_block = -(-lengths // size)
    block_chunks = np.zeros(len(per_block) + 1, dtype=np.int64)
    np.cumsum(per_block, out=block_chunks[1:])
    chunk_block = np.repeat(np.arange(len(per_block)), per_block)
    rank = np.arange(block_chunks[-1]) - block_chunks[chunk_block]
    chunk_start = block_ptr[chunk_block] + rank * size
    chunk_len = np.minimum(size, block_ptr[chunk_block + 1] - chunk_start)
    return block_chunks, chunk_block, chunk_start, chunk_len


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
    user_factors, item_factors, user_bias, item_bias = table_views("numba", model, *MF_PARAMETERS[:4])
    mu = np.float32(model.global_bias.detach().cpu().float().item())
    return user_factors, item_factors, user_bias.reshape(-1), item_bias.reshape(-1), mu


class NumbaMFEngine:
    """Engine "numba": compiled deterministic lock-free parallel SGD (stratified) for biased MF on CPU.

    Uses ``config.lr`` (learning rate), ``config.l2`` (regularization ``reg``), ``config.seed`` (shuffle and
    groups) and ``config.threads`` (number of user/item groups and Numba threads; None = all cores; see the
    module docstring). It always runs plain per-rating SGD at a constant rate, so it honours no other
    optimizer, momentum, batch size, weight decay, schedule or sparse gradients; ``deepmf.training.engines``
    declares that, and ``select_engine`` never hands it a run that asks for them.

    Args:
        model: a biased regression MF (parameters ``user_factors``, ``item_factors``, ``user_bias``,
            ``item_bias``, ``global_bias``) on the CPU; updated in place.
        train: the training ratings.
        config: training options.
        device: must be the CPU.

    Raises:
        ConfigError: the device is not the CPU, or the model is not biased MF.
    """

    name = "numba"

    def __init__(self, model: RatingModel, train: Ratings, config: TrainConfig, device: torch.device) -> None:
        if torch.device(device).type != "cpu":
            raise ConfigError(f"the numba engine runs on cpu, not {device}")
        mf_arrays(model)  # validate the model now, not at the first epoch
        self.model = model
        self.train = train  # kept (not copied) only for train_epoch(order=...)
        self.lr = np.float32(config.lr)
        self.reg = np.float32(config.l2)
        # The groups follow the requested threads, not the cores present, so a result does not depend on the
        # machine; with fewer cores than groups, workers take several blocks of a sub-epoch in turn.
        self.groups = config.threads or numba.config.NUMBA_NUM_THREADS
        self.threads = min(self.groups, numba.config.NUMBA_NUM_THREADS)
        self.rng = np.random.default_rng(config.seed)
        user_group = balanced_groups(train.user_counts(), self.groups, self.rng)
        item_group = balanced_groups(train.item_counts(), self.groups, self.rng)
        # One full shuffle, once: training data often arrives sorted by user or time, and the per-epoch
        # shuffle only reorders chunks and rows within chunks. int32 and in place: no 8-byte temporary.
        order = np.arange(len(train), dtype=np.int32 if len(train) < 2**31 else np.int64)
        self.rng.shuffle(order)
        self.users = np.empty(len(train), dtype=np.int32)
        self.items = np.empty(len(train), dtype=np.int32)
        self.ratings = np.empty(len(train), dtype=np.float32)
        block_ptr = np.zeros(self.groups * self.groups + 1, dtype=np.int64)
        _scatter_into_blocks(order, train.users, train.items, np.asarray(train.ratings, dtype=np.float32),
                             user_group, item_group, self.groups, self.users, self.items, self.ratings,
                             block_ptr)
        del order
        self.block_chunks, self.chunk_block, self.chunk_start, self.chunk_len = _chunks(block_ptr)
        self._compile()

    def _compile(self) -> None:
        """Compile (or load from numba's cache) the kernel now, so epoch timings measure training only."""
        user_factors, item_factors, user_bias, item_bias, mu = mf_arrays(self.model)
        empty = np.zeros(0, dtype=np.int64)
        sgd_epoch(self.users[:0], self.items[:0], self.ratings[:0], np.zeros(2, dtype=np.int64), empty, empty,
                  empty, empty, empty, np.zeros(1, dtype=np.int64), user_factors, item_factors, user_bias,
                  item_bias, mu, self.lr, self.reg)

    def train_epoch(self, epoch: int, order: np.ndarray | None = None) -> float:
        """Run one epoch of stratified SGD in place; return the RMSE of the errors met during the pass.

        Args:
            epoch: epoch number (the shuffle comes from the engine's RNG, not from this number).
            order: only for exact comparisons with another engine: visit the training rows (indices into the
                ``train`` passed at construction) in exactly this order, sequentially in one thread.
        """
        user_factors, item_factors, user_bias, item_bias, mu = mf_arrays(self.model)
        if order is None:
            users, items, ratings = self.users, self.items, self.ratings
            block_chunks, chunk_start, chunk_len = self.block_chunks, self.chunk_start, self.chunk_len
            n_chunks = len(chunk_start)
            # Random keys within each block's integer part: sorting them shuffles chunks inside their block.
            chunk_order = np.argsort(self.chunk_block + self.rng.random(n_chunks))
            # Odd multipliers make j -> (a j + b) mod 2**m a permutation of each chunk.
            chunk_mult = self.rng.integers(0, 1 << (BLOCK_BITS - 1), n_chunks) * 2 + 1
            chunk_shift = self.rng.integers(0, 1 << BLOCK_BITS, n_chunks)
            sub_epochs = self.rng.permutation(self.groups)
            threads = self.threads
        else:
            users, items, ratings = self._in_given_order(np.asarray(order))
            block_chunks, _, chunk_start, chunk_len = _chunks(np.array([0, len(users)], dtype=np.int64))
            chunk_order = np.arange(len(chunk_start))
            chunk_mult = np.ones(len(chunk_start), dtype=np.int64)
            chunk_shift = np.zeros(len(chunk_start), dtype=np.int64)
            sub_epochs = np.zeros(1, dtype=np.int64)
            threads = 1
        numba.set_num_threads(threads)
        sse = sgd_epoch(users, items, ratings, block_chunks, chunk_order, chunk_start, chunk_len, chunk_mult,
                        chunk_shift, sub_epochs, user_factors, item_factors, user_bias, item_bias, mu, self.lr,
                        self.reg)
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
