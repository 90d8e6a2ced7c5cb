"""Engine "bpr": compiled stochastic gradient ascent on the BPR criterion for ``deepmf.models.bpr.BPR``.

An epoch draws ``negatives`` triples (u, i, j) per training interaction (u, i), in a fresh random order, each j
uniform among the items u never interacted with (``negatives.draw_unseen``: never a positive), and updates

    x = <p_u, q_i - q_j> + b_i - b_j,   z = sigmoid(-x)
    p_u += lr (z (q_i - q_j) - l2 p_u)
    q_i += lr (z p_u - l2 q_i),   q_j += lr (-z p_u - l2 q_j)
    b_i += lr (z - l2 b_i),       b_j += lr (-z - l2 b_j)

as Rendle et al. (2009) and the ``implicit`` library do. Threads take contiguous slices of the epoch's order
and update shared rows without locks (Hogwild!, as ``implicit``), so two or more threads do not repeat a run
bit for bit; below ``deepmf.device.PARALLEL_FROM_RATINGS`` interactions the default is one thread, which does.
The negatives themselves come from a counter-based generator and do not depend on the threads. The epoch's
order and salt come from one numpy Generator seeded by ``config.seed`` whose state is in ``state_dict``.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import torch
from numba import njit, prange

from deepmf.device import default_cpu_threads
from deepmf.errors import ConfigError
from deepmf.training.engines.compiled import check_model, table_views
from deepmf.training.engines.negatives import draw_unseen, positives_csr, splitmix64

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.bpr import BPR
    from deepmf.training.config import TrainConfig


@njit(parallel=True, fastmath=True, cache=True)
def bpr_epoch(users, items, order, indptr, seen, user_factors, item_factors, item_bias, lr, l2, salt,
              n_threads):  # pragma: no cover - compiled
    """One pass over ``order`` (indices into ``users``/``items``); returns the summed ``-ln sigmoid(x)``."""
    n = order.shape[0]
    n_items = item_factors.shape[0]
    n_factors = user_factors.shape[1]
    losses = np.zeros(n_threads, dtype=np.float64)
    per_thread = (n + n_threads - 1) // n_threads
    for t in prange(n_threads):
        loss = 0.0
        for s in range(t * per_thread, min(n, (t + 1) * per_thread)):
            row = order[s]
            u = users[row]
            i = items[row]
            j = draw_unseen(indptr, seen, u, n_items, splitmix64(salt + np.uint64(s)))
            if j < 0:
                continue
            x = item_bias[i] - item_bias[j]
            for f in range(n_factors):
                x += user_factors[u, f] * (item_factors[i, f] - item_factors[j, f])
            # -ln sigmoid(x) = softplus(-x), written to stay finite for large |x|
            loss += math.log1p(math.exp(-x)) if x > -30.0 else -x
            z = 1.0 / (1.0 + math.exp(x)) if x > -30.0 else 1.0
            item_bias[i] += lr * (z - l2 * item_bias[i])
            item_bias[j] += lr * (-z - l2 * item_bias[j])
            for f in range(n_factors):
                p = user_factors[u, f]
                qi = item_factors[i, f]
                qj = item_factors[j, f]
                user_factors[u, f] = p + lr * (z * (qi - qj) - l2 * p)
                item_factors[i, f] = qi + lr * (z * p - l2 * qi)
                item_factors[j, f] = qj + lr * (-z * p - l2 * qj)
        losses[t] = loss
    return losses.sum()


def _views(model: BPR) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Numpy views (sharing memory) of the model's user factors, item factors and item biases."""
    user_factors, item_factors, item_bias = table_views("bpr", model, "user_factors", "item_factors", "item_bias")
    return user_factors, item_factors, item_bias.reshape(-1)


class NumbaBPREngine:
    """Engine "bpr" (see the module docstring).

    Uses ``config.lr``, ``config.l2``, ``config.negatives`` (triples per interaction and epoch, default 1),
    ``config.seed`` and ``config.threads``; it always runs plain SGD at a constant rate, and
    ``deepmf.training.engines.ENGINES`` says so: it never hands this engine another optimizer, weight decay or
    an LR schedule.

    Raises:
        ConfigError: not the CPU, not a BPR model, or no interactions.
    """

    name = "bpr"

    def __init__(self, model: BPR, train: Ratings, config: TrainConfig, device: torch.device) -> None:
        check_model("bpr", model, device)
        if len(train) == 0:
            raise ConfigError("no training interactions")
        _views(model)
        self.model = model
        self.lr = np.float32(config.lr)
        self.l2 = np.float32(config.l2)
        self.negatives = config.negatives or 1
        self.threads = min(config.threads or default_cpu_threads(len(train) * self.negatives),
                           numba.config.NUMBA_NUM_THREADS)
        self.users = np.ascontiguousarray(train.users, dtype=np.int32)
        self.items = np.ascontiguousarray(train.items, dtype=np.int32)
        self.indptr, self.seen = positives_csr(self.users, self.items, train.n_users)
        self.rng = np.random.default_rng(config.seed)
        user_factors, item_factors, item_bias = _views(model)
        # Compile (or load from numba's cache) now, so epoch timings measure training only.
        bpr_epoch(self.users, self.items, np.zeros(0, dtype=np.int64), self.indptr, self.seen, user_factors,
                  item_factors, item_bias, self.lr, self.l2, np.uint64(0), 1)

    def train_epoch(self, epoch: int) -> float:
        """One pass of ``negatives`` triples per interaction; returns the mean ``-ln sigmoid(x)``."""
        user_factors, item_factors, item_bias = _views(self.model)
        n = len(self.users)
        order = self.rng.permutation(n * self.negatives) % n
        salt = np.uint64(self.rng.integers(0, 2**63))
        numba.set_num_threads(self.threads)
        loss = bpr_epoch(self.users, self.items, order, self.indptr, self.seen, user_factors, item_factors,
                         item_bias, self.lr, self.l2, salt, self.threads)
        mean = float(loss) / max(len(order), 1)
        if not math.isfinite(mean):
            raise ConfigError(f"training diverged in epoch {epoch}: lower the learning rate (now {float(self.lr)})")
        return mean

    def state_dict(self) -> dict[str, Any]:
        """The order/salt RNG's state (a JSON string), so a resumed run continues the same sequence."""
        return {"rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = json.loads(state["rng"])
