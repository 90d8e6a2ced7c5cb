"""Engine "svdpp": compiled lock-free parallel SGD for SVD++ on the CPU.

It extends the numba MF engine (same options, validation, seeded shuffle and RNG state) with a user-by-user
pass: for each user, the implicit term z_u = |N(u)|^-1/2 sum_j y_j is computed once, the user's ratings get
the biased-MF SGD update with p_u + z_u as the user vector, and the y_j of his items get one update with the
gradient accumulated over his ratings. Surprise updates every y_j after every rating, which costs
O(|N(u)|^2) per user instead of O(|N(u)|) and is why its SVD++ is slow. Workers take users in a fresh random
order each epoch and share item parameters without locks (Hogwild!), so runs with two or more threads are not
bit-reproducible; below ``deepmf.device.PARALLEL_FROM_RATINGS`` ratings the default is one thread, which is.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numba
import numpy as np
import torch
from numba import njit, prange

from deepmf.device import default_cpu_threads
from deepmf.errors import ConfigError
from deepmf.training.engines.numba_mf import NumbaMFEngine, mf_arrays

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.base import RatingModel
    from deepmf.training.config import TrainConfig


@njit(parallel=True, fastmath=True, cache=True)
def svdpp_epoch(user_order, user_ptr, rating_items, rating_values, n_workers, user_factors, item_factors,
                implicit_factors, user_bias, item_bias, mu, lr, reg):  # pragma: no cover - compiled
    """One epoch of SVD++ SGD over users in ``user_order``; returns the summed squared error."""
    k = user_factors.shape[1]
    sse = np.zeros(n_workers, dtype=np.float64)
    for w in prange(n_workers):
        implicit = np.empty(k, dtype=np.float32)
        gradient = np.empty(k, dtype=np.float32)
        local = 0.0
        for t in range(w, user_order.shape[0], n_workers):
            u = user_order[t]
            start, end = user_ptr[u], user_ptr[u + 1]
            if start == end:
                continue
            scale = np.float32(1.0 / math.sqrt(end - start))
            implicit[:] = 0.0
            gradient[:] = 0.0
            for p in range(start, end):
                j = rating_items[p]
                for f in range(k):
                    implicit[f] += implicit_factors[j, f]
            for f in range(k):
                implicit[f] *= scale
            for p in range(start, end):
                i = rating_items[p]
                dot = np.float32(0.0)
                for f in range(k):
                    dot += (user_factors[u, f] + implicit[f]) * item_factors[i, f]
                err = rating_values[p] - (mu + user_bias[u] + item_bias[i] + dot)
                local += err * err
                user_bias[u] += lr * (err - reg * user_bias[u])
                item_bias[i] += lr * (err - reg * item_bias[i])
                for f in range(k):
                    pu = user_factors[u, f]
                    qi = item_factors[i, f]
                    user_factors[u, f] = pu + lr * (err * qi - reg * pu)
                    item_factors[i, f] = qi + lr * (err * (pu + implicit[f]) - reg * qi)
                    gradient[f] += err * qi
            for p in range(start, end):
                j = rating_items[p]
                for f in range(k):
                    implicit_factors[j, f] += lr * (scale * gradient[f] - reg * implicit_factors[j, f])
        sse[w] = local
    return sse.sum()


class NumbaSVDppEngine(NumbaMFEngine):
    """Engine "svdpp" (see the module docstring); options as the numba MF engine (lr, l2, seed, threads).

    Raises:
        ConfigError: as the numba MF engine, or the model has no ``implicit_factors``.
    """

    name = "svdpp"

    def __init__(self, model: RatingModel, train: Ratings, config: TrainConfig, device: torch.device) -> None:
        if getattr(model, "implicit_factors", None) is None:
            raise ConfigError(f"the svdpp engine trains SVD++ only, not {getattr(model, 'name', model)!r}")
        super().__init__(model, train, config, device)
        # Hogwild! workers race on the shared item rows, so two threads do not repeat a run bit for bit; on small
        # data they also gain little (a fraction of a second on ML-100K u1), so one is the default there.
        self.threads = min(config.threads or default_cpu_threads(len(train)), numba.config.NUMBA_NUM_THREADS)
        # Group the (already shuffled) private copy by user; a stable sort keeps each user's shuffled order.
        by_user = np.argsort(self.users, kind="stable")
        self.rating_items = np.ascontiguousarray(self.items[by_user])
        self.rating_values = np.ascontiguousarray(self.ratings[by_user])
        self.user_ptr = np.zeros(model.config.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.users, minlength=model.config.n_users), out=self.user_ptr[1:])

    def train_epoch(self, epoch: int) -> float:  # type: ignore[override]
        """One epoch of SVD++ SGD in place; returns the training RMSE of the errors seen during the pass."""
        user_factors, item_factors, user_bias, item_bias, mu = mf_arrays(self.model)
        implicit = self.model.implicit_factors.weight.detach().numpy()
        user_order = self.rng.permutation(len(self.user_ptr) - 1).astype(np.int64)
        numba.set_num_threads(self.threads)
        sse = svdpp_epoch(user_order, self.user_ptr, self.rating_items, self.rating_values, self.threads,
                          user_factors, item_factors, implicit, user_bias, item_bias, mu, self.lr, self.reg)
        return math.sqrt(sse / max(len(self.rating_values), 1))
