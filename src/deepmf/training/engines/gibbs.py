"""Engine "gibbs": Bayesian MF by blocked Gibbs sampling (BPMF with implicit and date features).

The sampled model is a factorization machine over three *sides* of each rating (user u, item i, day d)::

    r ~ N(mu + b_u + c_i + e_d + <U_u, V_i> + <T_d, U_u + V_i>,  1 / alpha)
    U_u = p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j        (SVD++: the items u rated)
    V_i = q_i + |N(i)|^-1/2 sum_{v in N(i)} z_v        ("flipped" SVD++: the users who rated i)

as in Salakhutdinov & Mnih (2008) and Rendle et al. (2019). Every group of parameters (p, y, q, z, t and the
three bias vectors) has a Normal-Gamma hyperprior per dimension, sampled each sweep, and the noise precision
``alpha`` a Gamma prior, so there is no regularization constant to tune. One ``train_epoch`` is one sweep:

1. noise precision, global mean, then each bias group (closed form, vectorised with ``np.bincount``);
2. user rows p_u in parallel (their ratings are disjoint), then the implicit rows y_j one after another (each
   y_j is shared by every user who rated j; the sampler keeps per-user Gram matrices so that costs
   O(|N(j)| k^2));
3. the same on the item side (q_i, then z_v); 4. day rows t_d in parallel.

After ``burn_in`` sweeps every ``thin``-th sample is averaged into the model. The posterior-mean prediction
over S kept samples is a sum of S dot products, so the model stores the samples side by side (each scaled by
1/sqrt(S)) and scores every item with one matrix product. The date has to be folded in for a prediction that
gets no time: each user is scored by the mean of his predictions over the days he rated on in training (see
``BayesMFConfig.date``).

All random numbers come from one numpy Generator seeded by ``config.seed`` and are drawn outside the compiled
kernels, whose rows are independent, so a run is reproducible whatever the thread count.
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
from deepmf.training.engines.gibbs_common import (
    BIAS_GROUPS,
    FACTOR_GROUPS,
    PRIOR_RATE,
    PRIOR_SHAPE,
    check_sampler_options,
    draw_hyperparameters,
    rating_days,
    sample_slot,
    sample_tables,
)

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.bayes import BayesMF
    from deepmf.training.config import TrainConfig



# ---- compiled kernels --------------------------------------------------------------------------------------
@njit(cache=True, fastmath=True, inline="always")
def _draw_gaussian(prec, rhs, noise, out):  # pragma: no cover - compiled
    """Draw ``out ~ N(prec^-1 rhs, prec^-1)`` given standard normals ``noise``; ``prec`` is overwritten.

    With prec = L L^T: out = L^-T (L^-1 rhs + noise), whose mean is prec^-1 rhs and covariance L^-T L^-1.
    """
    k = prec.shape[0]
    for j in range(k):  # Cholesky, in place, lower triangle
        s = prec[j, j]
        for m in range(j):
            s -= prec[j, m] * prec[j, m]
        d = math.sqrt(s)
        prec[j, j] = d
        for i in range(j + 1, k):
            s = prec[i, j]
            for m in range(j):
                s -= prec[i, m] * prec[j, m]
            prec[i, j] = s / d
    for i in range(k):
        s = rhs[i]
        for m in range(i):
            s -= prec[i, m] * out[m]
        out[i] = s / prec[i, i]
    for i in range(k - 1, -1, -1):
        s = out[i] + noise[i]
        for m in range(i + 1, k):
            s -= prec[m, i] * out[m]
        out[i] = s / prec[i, i]


@njit(parallel=True, cache=True, fastmath=True)
def gram_and_gradient(ptr, order, design_a, index_a, design_b, index_b, residual, gram,
                      grad):  # pragma: no cover
    """Per row g: gram[g] = sum x x^T, grad[g] = sum x e over its ratings, x = a[index_a] + b[index_b].

    Row g owns ratings ``order[ptr[g]:ptr[g + 1]]``; ``x`` is the derivative of the prediction with respect to
    the row's factor vector and ``e`` the current residual.
    """
    k = design_a.shape[1]
    for g in prange(ptr.shape[0] - 1):
        x = np.empty(k)
        gram[g] = 0.0
        grad[g] = 0.0
        for p in range(ptr[g], ptr[g + 1]):
            r = order[p]
            a = index_a[r]
            b = index_b[r]
            for f in range(k):
                x[f] = design_a[a, f] + design_b[b, f]
            e = residual[r]
            for f in range(k):
                grad[g, f] += x[f] * e
                for h in range(f + 1):
                    gram[g, f, h] += x[f] * x[h]
        for f in range(k):
            for h in range(f):
                gram[g, h, f] = gram[g, f, h]


@njit(parallel=True, cache=True, fastmath=True)
def sample_own_rows(factors, gram, grad, prior_mean, prior_prec, alpha, noise):  # pragma: no cover
    """Draw every row of a group whose rows own disjoint ratings (user, item or day factors), in parallel.

    Keeps ``grad`` consistent with the new rows (grad -= gram @ change) so implicit rows can be drawn next
    without recomputing residuals.
    """
    k = factors.shape[1]
    for g in prange(factors.shape[0]):
        prec = np.empty((k, k))
        rhs = np.empty(k)
        new = np.empty(k)
        for f in range(k):
            s = 0.0
            for h in range(k):
                prec[f, h] = alpha * gram[g, f, h]
                s += gram[g, f, h] * factors[g, h]
            prec[f, f] += prior_prec[f]
            rhs[f] = prior_prec[f] * prior_mean[f] + alpha * (grad[g, f] + s)
        _draw_gaussian(prec, rhs, noise[g], new)
        for f in range(k):
            new[f] -= factors[g, f]
        for f in range(k):
            s = 0.0
            for h in range(k):
                s += gram[g, f, h] * new[h]
            grad[g, f] -= s
            factors[g, f] += new[f]


@njit(parallel=True, cache=True, fastmath=True)
def implicit_grams(owner_ptr, owners, gram, scale, out):  # pragma: no cover
    """out[j] = sum over owners o of row j of scale[o]^2 gram[o]: the data part of implicit row j's precision.

    It depends on the owners' Gram matrices only, which drawing implicit rows leaves unchanged, so every row's
    is computed up front, in parallel; only the owners' gradients must be updated one row after another.
    """
    k = gram.shape[1]
    for j in prange(out.shape[0]):
        for f in range(k):
            for h in range(f + 1):
                out[j, f, h] = 0.0
        for p in range(owner_ptr[j], owner_ptr[j + 1]):
            o = owners[p]
            s2 = scale[o] * scale[o]
            for f in range(k):
                for h in range(f + 1):
                    out[j, f, h] += s2 * gram[o, f, h]
        for f in range(k):
            for h in range(f):
                out[j, h, f] = out[j, f, h]


@njit(cache=True, fastmath=True)
def sample_implicit_rows(factors, owner_ptr, owners, gram, grad, scale, gram_sums, prior_mean, prior_prec, alpha,
                         noise):  # pragma: no cover
    """Draw implicit rows (y_j or z_v) one by one: row j enters the vector of every owner in its list.

    Owner o (a user for y_j) sees y_j scaled by ``scale[o]`` = |N(o)|^-1/2, so with
    M = sum_o scale_o^2 gram_o (``gram_sums[j]``, from ``implicit_grams``), y_j's precision is
    diag(prior) + alpha M and its linear term alpha (sum_o scale_o grad_o + M y_j). After each draw the owners'
    gradients are updated, which keeps the sweep an exact Gibbs sampler.
    """
    k = factors.shape[1]
    prec = np.empty((k, k))
    rhs = np.empty(k)
    new = np.empty(k)
    for j in range(factors.shape[0]):
        rhs[:] = 0.0
        for p in range(owner_ptr[j], owner_ptr[j + 1]):
            o = owners[p]
            s = scale[o]
            for f in range(k):
                rhs[f] += s * grad[o, f]
        for f in range(k):
            t = 0.0
            for h in range(k):
                t += gram_sums[j, f, h] * factors[j, h]
                prec[f, h] = alpha * gram_sums[j, f, h]
            prec[f, f] += prior_prec[f]
            rhs[f] = prior_prec[f] * prior_mean[f] + alpha * (rhs[f] + t)
        _draw_gaussian(prec, rhs, noise[j], new)
        for f in range(k):
            new[f] -= factors[j, f]
            factors[j, f] += new[f]
        for p in range(owner_ptr[j], owner_ptr[j + 1]):
            o = owners[p]
            s = scale[o]
            for f in range(k):
                t = 0.0
                for h in range(k):
                    t += gram[o, f, h] * new[h]
                grad[o, f] -= s * t


@njit(parallel=True, cache=True, fastmath=True)
def effective_vectors(base, implicit, ptr, columns, scale, out):  # pragma: no cover
    """out[g] = base[g] + scale[g] * sum of implicit[c] over c in columns[ptr[g]:ptr[g + 1]]."""
    k = base.shape[1]
    for g in prange(base.shape[0]):
        for f in range(k):
            out[g, f] = 0.0
        for p in range(ptr[g], ptr[g + 1]):
            c = columns[p]
            for f in range(k):
                out[g, f] += implicit[c, f]
        for f in range(k):
            out[g, f] = base[g, f] + scale[g] * out[g, f]


@njit(parallel=True, cache=True, fastmath=True)
def residuals(users, items, days, ratings, mu, user_bias, item_bias, day_bias, user_vecs, item_vecs, day_vecs,
              out):  # pragma: no cover
    """out = rating - prediction of the current sample, for every training rating."""
    k = user_vecs.shape[1]
    for r in prange(ratings.shape[0]):
        u = users[r]
        i = items[r]
        d = days[r]
        s = mu + user_bias[u] + item_bias[i] + day_bias[d]
        for f in range(k):
            s += user_vecs[u, f] * item_vecs[i, f] + day_vecs[d, f] * (user_vecs[u, f] + item_vecs[i, f])
        out[r] = ratings[r] - s


# ---- helpers -----------------------------------------------------------------------------------------------
def _csr(keys: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Row pointer and rating order grouping the ratings by ``keys`` (stable, so reproducible)."""
    order = np.argsort(keys, kind="stable").astype(np.int64)
    ptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(keys, minlength=n_rows), out=ptr[1:])
    return ptr, order


class GibbsEngine:
    """Engine "gibbs": one Gibbs sweep per epoch for a ``BayesMF`` model (see the module docstring).

    Uses ``config.seed`` and ``config.threads`` only (None: ``deepmf.device.default_cpu_threads``; the
    draws do not depend on it): priors are sampled, so learning rate, regularization and
    batch size do not apply; ``config.epochs`` is the number of sweeps, the model's ``burn_in`` of which are
    discarded. Runs on the CPU; the model can then be moved anywhere for scoring.

    Args:
        model: a ``BayesMF``; its factor and bias tensors are overwritten with the posterior mean so far.
        train: the training ratings (also the source of the implicit features and the days).
        config: training options.
        device: must be the CPU.

    Raises:
        ConfigError: not on the CPU, the model is not Bayesian MF, or the date feature is on but the ratings
            have no timestamps.
    """

    name = "gibbs"

    def __init__(self, model: BayesMF, train: Ratings, config: TrainConfig, device: torch.device) -> None:
        if torch.device(device).type != "cpu":
            raise ConfigError(f"the gibbs engine runs on cpu, not {device}")
        check_sampler_options(model, train, config)
        cfg = model.config
        self.model = model
        self.rank = cfg.rank
        self.threads = min(config.threads or default_cpu_threads(len(train)), numba.config.NUMBA_NUM_THREADS)
        self.rng = np.random.default_rng(config.seed)
        # Keep at most ``samples`` samples, spread evenly over the sweeps after burn-in.
        self.thin = max(1, -(-(config.epochs - cfg.burn_in) // cfg.samples))
        self.sweeps = 0
        self.kept = 0

        n_users, n_items = cfg.n_users, cfg.n_items
        self.users = np.ascontiguousarray(train.users, dtype=np.int32)
        self.items = np.ascontiguousarray(train.items, dtype=np.int32)
        self.ratings = np.ascontiguousarray(train.ratings, dtype=np.float64)
        if cfg.date:
            # The model's day span comes from the data it was built for; days outside it count as the nearest.
            self.first_day, self.n_days = cfg.first_day, cfg.n_days
            self.days = rating_days(train.timestamps, self.first_day, self.n_days)
        else:
            self.first_day, self.n_days = 0, 1
            self.days = np.zeros(len(train), dtype=np.int32)
        self.user_ptr, self.user_order = _csr(self.users, n_users)
        self.item_ptr, self.item_order = _csr(self.items, n_items)
        self.day_ptr, self.day_order = _csr(self.days, self.n_days)
        # Implicit feedback = which items a user rated (and which users rated an item) in training data only.
        self.user_items = self.items[self.user_order]
        self.item_users = self.users[self.item_order]
        self.user_scale = 1.0 / np.sqrt(np.maximum(np.diff(self.user_ptr), 1)).astype(np.float64)
        self.item_scale = 1.0 / np.sqrt(np.maximum(np.diff(self.item_ptr), 1)).astype(np.float64)
        self.user_days = self.days[self.user_order]
        self.user_share = 1.0 / np.maximum(np.diff(self.user_ptr), 1).astype(np.float64)

        k = self.rank
        init = 0.1  # a small random start breaks the symmetry between factors; the sampler forgets it quickly
        self.state: dict[str, Any] = {
            "mu": float(self.ratings.mean()) if len(self.ratings) else 0.0,
            "alpha": 1.0,
            "user_bias": np.zeros(n_users), "item_bias": np.zeros(n_items), "day_bias": np.zeros(self.n_days),
            "user_factors": self.rng.normal(0.0, init, (n_users, k)),
            "user_implicit": np.zeros((n_items, k)),
            "item_factors": self.rng.normal(0.0, init, (n_items, k)),
            "item_implicit": np.zeros((n_users, k)),
            "day_factors": np.zeros((self.n_days, k)),
        }
        for group in (*FACTOR_GROUPS, *BIAS_GROUPS):
            self.state[f"{group}_prior_mean"] = np.zeros(k if group in FACTOR_GROUPS else 1)
            self.state[f"{group}_prior_prec"] = np.ones(k if group in FACTOR_GROUPS else 1)
        self._derive()

    # ---- derived quantities --------------------------------------------------------------------------------
    def _derive(self, user_side: bool = True, item_side: bool = True) -> None:
        """Recompute the effective vectors of the sides whose parameters changed, then the residuals."""
        s = self.state
        cfg = self.model.config
        if user_side:
            self.user_vecs = self._effective("user_factors", "user_implicit", self.user_ptr, self.user_items,
                                             self.user_scale, cfg.implicit_user)
        if item_side:
            self.item_vecs = self._effective("item_factors", "item_implicit", self.item_ptr, self.item_users,
                                             self.item_scale, cfg.implicit_item)
        self.residual = np.empty_like(self.ratings)
        residuals(self.users, self.items, self.days, self.ratings, s["mu"], s["user_bias"], s["item_bias"],
                  s["day_bias"], self.user_vecs, self.item_vecs, s["day_factors"], self.residual)

    def _effective(self, base: str, implicit: str, ptr: np.ndarray, columns: np.ndarray, scale: np.ndarray,
                   enabled: bool) -> np.ndarray:
        if not enabled:
            return self.state[base].copy()
        out = np.empty_like(self.state[base])
        effective_vectors(self.state[base], self.state[implicit], ptr, columns, scale, out)
        return out

    # ---- one sweep -----------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> float:
        """Run one Gibbs sweep and fold the sample into the model when it is kept; return its train RMSE."""
        numba.set_num_threads(self.threads)
        torch.set_num_threads(self.threads)  # the Trainer restores the caller's count after the fit
        cfg = self.model.config
        s = self.state
        self._sample_noise_and_biases()

        # User side: p_u (parallel), then y_j (sequential); both see the item vectors plus the day vectors.
        gram = np.empty((cfg.n_users, self.rank, self.rank))
        grad = np.empty((cfg.n_users, self.rank))
        gram_and_gradient(self.user_ptr, self.user_order, self.item_vecs, self.items, s["day_factors"],
                          self.days, self.residual, gram, grad)
        self._sample_rows("user_factors", gram, grad)
        if cfg.implicit_user:
            self._sample_implicit("user_implicit", self.item_ptr, self.item_users, gram, grad,
                                  self.user_scale)
        self._derive(item_side=False)

        gram = np.empty((cfg.n_items, self.rank, self.rank))
        grad = np.empty((cfg.n_items, self.rank))
        gram_and_gradient(self.item_ptr, self.item_order, self.user_vecs, self.users, s["day_factors"],
                          self.days, self.residual, gram, grad)
        self._sample_rows("item_factors", gram, grad)
        if cfg.implicit_item:
            self._sample_implicit("item_implicit", self.user_ptr, self.user_items, gram, grad,
                                  self.item_scale)
        self._derive(user_side=False)

        if cfg.date:
            gram = np.empty((self.n_days, self.rank, self.rank))
            grad = np.empty((self.n_days, self.rank))
            gram_and_gradient(self.day_ptr, self.day_order, self.user_vecs, self.users, self.item_vecs,
                              self.items, self.residual, gram, grad)
            self._sample_rows("day_factors", gram, grad)
            self._derive(user_side=False, item_side=False)

        self._keep(epoch)
        self.sweeps += 1
        return float(np.sqrt(np.mean(self.residual**2))) if len(self.residual) else 0.0

    def _sample_hyper(self, group: str) -> None:
        """Draw a group's Normal-Gamma hyperparameters (mean and precision per dimension) given its values."""
        values = self.state[group].reshape(len(self.state[group]), -1)
        mean = values.mean(axis=0)
        spread = ((values - mean) ** 2).sum(axis=0)
        self.state[f"{group}_prior_prec"], self.state[f"{group}_prior_mean"] = draw_hyperparameters(
            self.rng, values.shape[0], mean, spread)

    def _sample_noise_and_biases(self) -> None:
        s = self.state
        n = len(self.residual)
        sse = float(self.residual @ self.residual)
        s["alpha"] = float(self.rng.gamma(PRIOR_SHAPE + 0.5 * n, 1.0 / (PRIOR_RATE + 0.5 * sse)))
        # Global mean: flat prior, so N(mu + mean residual, 1 / (alpha n)).
        count = max(n, 1)
        shift = self.residual.sum() / count + self.rng.standard_normal() / math.sqrt(s["alpha"] * count)
        s["mu"] += shift
        self.residual -= shift
        for group, index in (("user_bias", self.users), ("item_bias", self.items), ("day_bias", self.days)):
            if group == "day_bias" and not self.model.config.date:
                continue
            self._sample_hyper(group)
            bias = s[group]
            counts = np.bincount(index, minlength=len(bias))
            sums = np.bincount(index, weights=self.residual, minlength=len(bias)) + counts * bias
            prec = s[f"{group}_prior_prec"][0] + s["alpha"] * counts
            mean = (s[f"{group}_prior_prec"][0] * s[f"{group}_prior_mean"][0] + s["alpha"] * sums) / prec
            new = mean + self.rng.standard_normal(len(bias)) / np.sqrt(prec)
            self.residual -= (new - bias)[index]
            s[group] = new

    def _sample_rows(self, group: str, gram: np.ndarray, grad: np.ndarray) -> None:
        self._sample_hyper(group)
        s = self.state
        noise = self.rng.standard_normal(s[group].shape)
        sample_own_rows(s[group], gram, grad, s[f"{group}_prior_mean"], s[f"{group}_prior_prec"], s["alpha"],
                        noise)

    def _sample_implicit(self, group: str, owner_ptr: np.ndarray, owners: np.ndarray, gram: np.ndarray,
                         grad: np.ndarray, scale: np.ndarray) -> None:
        self._sample_hyper(group)
        s = self.state
        noise = self.rng.standard_normal(s[group].shape)
        gram_sums = np.empty((len(s[group]), self.rank, self.rank))
        implicit_grams(owner_ptr, owners, gram, scale, gram_sums)
        sample_implicit_rows(s[group], owner_ptr, owners, gram, grad, scale, gram_sums, s[f"{group}_prior_mean"],
                             s[f"{group}_prior_prec"], s["alpha"], noise)

    # ---- averaging into the model --------------------------------------------------------------------------
    def _keep(self, epoch: int) -> None:
        """Fold the current sample into the model: in burn-in it replaces slot 0, later it is averaged."""
        cfg = self.model.config
        kept = sample_slot(self.sweeps, cfg.burn_in, self.thin, self.kept, cfg.samples)
        if kept is None:
            return
        s = self.state
        day_mix = day_bias_mix = None
        if cfg.date:
            # A prediction without a time is the mean of the user's predictions over the days he rated on in
            # training (his day mix), which is linear in the day terms, so it folds into his vector and bias;
            # the mix is kept too, so that predict_at can take it out again and use a given day instead.
            day_mix = np.empty_like(self.user_vecs)
            effective_vectors(np.zeros_like(self.user_vecs), s["day_factors"], self.user_ptr, self.user_days,
                              self.user_share, day_mix)
            day_bias_mix = (np.bincount(self.users, weights=s["day_bias"][self.days], minlength=cfg.n_users)
                            * self.user_share + (self.user_vecs * day_mix).sum(axis=1))
        means, vectors = sample_tables(s, self.user_vecs, self.item_vecs, day_mix, day_bias_mix)
        self.model.add_sample(kept, means, vectors)
        if self.sweeps >= cfg.burn_in:
            self.kept += 1

    # ---- checkpointing -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The sampler's current sample, hyperparameters and RNG: enough to resume the chain exactly."""
        state: dict[str, Any] = {"rng": json.dumps(self.rng.bit_generator.state), "sweeps": self.sweeps,
                                 "kept": self.kept}
        for key, value in self.state.items():
            state[key] = torch.from_numpy(np.array(value)) if isinstance(value, np.ndarray) else value
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by ``state_dict``."""
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.sweeps = int(state["sweeps"])
        self.kept = int(state["kept"])
        for key in self.state:
            value = state[key]
            is_array = isinstance(value, torch.Tensor)
            self.state[key] = value.numpy().astype(np.float64) if is_array else float(value)
        self._derive()
