"""Engine "ials": alternating conjugate-gradient solves for ``deepmf.models.ials.IALS``, compiled with Numba.

One epoch is one iALS iteration: every item row is re-solved against the fixed user factors, then every user
row against the new item factors (users last, so a user's row is the solution ``IALS.fold_in_user`` gives for
the same items, up to the CG tolerance). Each row takes ``cg_steps`` conjugate-gradient steps on its normal
equations (see the model's docstring), warm-started from its current value (Takacs et al. 2011; ``implicit``
runs 3): a step costs ``K^2 + 2 K n_row`` multiply-adds and never forms the K x K matrix. Rows are independent
given the other side, so they are solved in parallel over Numba threads without locks, and the result does not
depend on the number of threads. The Gram matrix ``G`` of the fixed side is one BLAS product per half-step.

The training loss is free to report: the user half-step computes every observed residual and ``w^T G w`` for
its starting residual, which is the loss after the item half-step (data term + unobserved term +
regularization, divided by the number of observed pairs).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import torch
from numba import njit, prange

import deepmf.training.engines.numba_mf  # noqa: F401 - sets numba's threading layer before a parallel kernel runs
from deepmf.device import default_cpu_threads
from deepmf.errors import ConfigError
from deepmf.training.engines.compiled import check_model, table_views

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.ials import IALS
    from deepmf.training.config import TrainConfig


@njit(parallel=True, fastmath=True, cache=True)
def solve_rows(indptr, columns, confidence, row_reg, fixed, gram, alpha0, target, cg_steps):  # pragma: no cover
    """CG steps on every row r of ``target``: ``(alpha0 G + sum_c conf h_c h_c^T + row_reg[r] I) x = sum_c conf h_c``
    over the row's observations ``c`` (``columns[indptr[r]:indptr[r+1]]``, rows of ``fixed``).

    Returns:
        The loss of the rows before the update: sum of ``conf (1 - h.x)^2 + alpha0 x^T G x + row_reg |x|^2``.
    """
    n_rows, k = target.shape
    losses = np.zeros(n_rows, dtype=np.float64)
    for r in prange(n_rows):
        start, end = indptr[r], indptr[r + 1]
        x = target[r]
        if start == end:  # no observation: the solution is 0
            x[:] = 0.0
            continue
        lam = row_reg[r]
        residual = np.empty(k, dtype=np.float32)
        # residual = b - A x = sum conf (1 - h.x) h - alpha0 G x - lam x
        loss = 0.0
        for a in range(k):
            g = np.float32(0.0)
            for b in range(k):
                g += gram[a, b] * x[b]
            residual[a] = -alpha0 * g - lam * x[a]
            loss += alpha0 * g * x[a] + lam * x[a] * x[a]
        for idx in range(start, end):
            h = fixed[columns[idx]]
            dot = np.float32(0.0)
            for a in range(k):
                dot += h[a] * x[a]
            error = np.float32(1.0) - dot
            weight = confidence[idx]
            loss += weight * error * error
            for a in range(k):
                residual[a] += weight * error * h[a]
        losses[r] = loss
        direction = residual.copy()
        product = np.empty(k, dtype=np.float32)
        rs_old = np.float32(0.0)
        for a in range(k):
            rs_old += residual[a] * residual[a]
        for _ in range(cg_steps):
            if rs_old < 1e-20:
                break
            for a in range(k):
                g = np.float32(0.0)
                for b in range(k):
                    g += gram[a, b] * direction[b]
                product[a] = alpha0 * g + lam * direction[a]
            for idx in range(start, end):
                h = fixed[columns[idx]]
                dot = np.float32(0.0)
                for a in range(k):
                    dot += h[a] * direction[a]
                scaled = confidence[idx] * dot
                for a in range(k):
                    product[a] += scaled * h[a]
            curvature = np.float32(0.0)
            for a in range(k):
                curvature += direction[a] * product[a]
            if curvature <= 0:
                break
            step = rs_old / curvature
            rs_new = np.float32(0.0)
            for a in range(k):
                x[a] += step * direction[a]
                residual[a] -= step * product[a]
                rs_new += residual[a] * residual[a]
            for a in range(k):
                direction[a] = residual[a] + (rs_new / rs_old) * direction[a]
            rs_old = rs_new
    return losses.sum()


def _csr(rows: np.ndarray, columns: np.ndarray, values: np.ndarray,
         n_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr int64, columns int32, values float32) of (row, column, value) triples grouped by row."""
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return (indptr, np.ascontiguousarray(columns[order], dtype=np.int32),
            np.ascontiguousarray(values[order], dtype=np.float32))


class IALSEngine:
    """Engine "ials" (see the module docstring).

    The loss's parameters (reg, alpha0, nu, alpha, cg_steps) are model options, stored with the model for
    ``fold_in_user``; the engine uses ``config.threads`` and nothing else of the training config. ``config.seed``
    only seeds the initial factors (drawn when the model is built); the solves are deterministic.

    Training options it cannot honour (l2, weight decay, an LR schedule, negatives, ...) are refused by
    ``deepmf.training.engines.ENGINES`` before it is built.

    Raises:
        ConfigError: not the CPU, not an iALS model, or no interactions.
    """

    name = "ials"

    def __init__(self, model: IALS, train: Ratings, config: TrainConfig, device: torch.device) -> None:
        check_model("ials", model, device)
        if len(train) == 0:
            raise ConfigError("no training interactions")
        self.model = model
        cfg = model.config
        confidence = model.confidence(np.asarray(train.ratings, dtype=np.float32)).astype(np.float32)
        users, items = train.users.astype(np.int64), train.items.astype(np.int64)
        self.by_user = _csr(users, items, confidence, cfg.n_users)
        self.by_item = _csr(items, users, confidence, cfg.n_items)
        self.user_reg = model.row_regularization(np.diff(self.by_user[0]), cfg.n_items).astype(np.float32)
        self.item_reg = model.row_regularization(np.diff(self.by_item[0]), cfg.n_users).astype(np.float32)
        self.alpha0 = np.float32(cfg.alpha0)
        self.n_observed = len(train)
        self.threads = min(config.threads or default_cpu_threads(len(train)), numba.config.NUMBA_NUM_THREADS)
        user_factors, item_factors = self._views()
        # Compile (or load from numba's cache) now, so epoch timings measure training only.
        solve_rows(np.zeros(1, dtype=np.int64), self.by_user[1], self.by_user[2], self.user_reg,
                   item_factors, np.zeros((cfg.factors, cfg.factors), dtype=np.float32), self.alpha0,
                   user_factors[:0], 1)

    def _views(self) -> tuple[np.ndarray, np.ndarray]:
        user_factors, item_factors = table_views("ials", self.model, "user_factors", "item_factors")
        return user_factors, item_factors

    def _half_step(self, csr: tuple[np.ndarray, np.ndarray, np.ndarray], row_reg: np.ndarray,
                   fixed: np.ndarray, target: np.ndarray) -> float:
        table = torch.from_numpy(fixed)  # torch's GEMM honours the run's thread count; numpy's BLAS would not
        gram = (table.T @ table).numpy()
        indptr, columns, confidence = csr
        return float(solve_rows(indptr, columns, confidence, row_reg, fixed, gram, self.alpha0, target,
                                self.model.config.cg_steps))

    def train_epoch(self, epoch: int) -> float:
        """One iteration (items, then users); returns the loss after the item step per observed pair."""
        user_factors, item_factors = self._views()
        numba.set_num_threads(self.threads)
        self._half_step(self.by_item, self.item_reg, user_factors, item_factors)
        # The user rows' starting loss covers the data and unobserved terms and the users' regularization.
        loss = self._half_step(self.by_user, self.user_reg, item_factors, user_factors)
        item_penalty = float((self.item_reg * np.square(item_factors).sum(axis=1)).sum())
        return (loss + item_penalty) / self.n_observed

    def state_dict(self) -> dict[str, Any]:
        """Nothing: the solves are deterministic, the model's factors are the whole state."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore (see ``state_dict``)."""
