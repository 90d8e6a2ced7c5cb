"""Engine "gibbs-torch": the Bayesian MF sampler of training/engines/gibbs.py in batched torch, for the GPU.

Same model, priors and conditional distributions as the numba sampler (read its docstring first): Normal-Gamma
hyperpriors per dimension sampled every sweep, Gamma noise precision, flat prior on the global mean, closed-form
bias draws, and Gaussian row draws. What changes is how the rows are drawn:

- **Own rows** (p_u, q_i, t_d): their ratings are disjoint, so every row of a group is drawn at once: one
  batched ``torch.linalg.cholesky`` over all (rank x rank) precisions, two batched triangular solves. The
  Gram matrices and gradients they need are ``index_add_`` scatters over the ratings, in chunks.
- **Implicit rows** (y_j, z_v): the numba sampler draws them one after another, because every y_j enters the
  vector of every user who rated j. Row by row is thousands of dependent tiny solves, which a GPU cannot do
  fast, so this engine draws the whole group *jointly* from the same conditional distribution, by
  perturbation (Papandreou & Yuille 2010): with precision ``P = diag(prior) + alpha A^T G A`` (A sums a user's
  implicit rows, G his Gram matrix) it solves ``P y = b + noise`` where the noise ``sqrt(prior) e0 +
  sqrt(alpha) A^T sum_r x_r e_r`` (one standard normal per row dimension and per rating) has covariance P,
  so the solution is an exact draw from N(P^-1 b, P^-1). The solve is preconditioned conjugate gradients
  (block-Jacobi: each row's own (rank x rank) precision, the matrices the numba sampler inverts), started from
  the current rows and run until its error is a thousandth of the draw's own spread (``CG_TOLERANCE``). A
  joint draw of a block is a valid (blocked) Gibbs step for the same posterior, so the chain has the same
  stationary distribution; it is not the same sequence of numbers as the numba sampler's, and the tests
  compare posterior-mean RMSE, not draws.

Everything is float64, like the numba sampler. Small random draws (hyperparameters, noise precision, global
mean) come from a numpy Generator, large ones (a normal per row and per rating) from a torch Generator on the
device; both are seeded by ``config.seed`` and saved by ``state_dict``, so a resumed chain continues exactly on
the same device. It runs on any torch device: CUDA for speed, the CPU in tests.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

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

# The conjugate-gradient draw of the implicit rows stops when its error, measured in the precision's own norm
# (in which the draw's spread around its mean is about sqrt(dimension)), is below CG_TOLERANCE x sqrt(dimension):
# a thousandth of the draw's own noise. (A residual relative to the right-hand side would demand the same
# accuracy in directions the data pins down and in those only the prior does, which can take thousands of steps.)
CG_TOLERANCE = 1e-3
CG_MAX_ITERATIONS = 1000
CG_CHECK_EVERY = 5  # iterations between convergence checks (each check is one host sync)
# Ratings per chunk when scattering rank x rank outer products: bounds the temporary at 8 rank^2 bytes each.
CHUNK = 1 << 21


@dataclass
class ImplicitProblem:
    """``apply(y) = rhs_mean + perturbation()`` is solved for a draw of a group's implicit rows.

    Attributes:
        apply: the conditional precision P times a (rows, rank) tensor.
        precondition: an approximate P^-1 (block-Jacobi) for conjugate gradients.
        rhs_mean: P times the conditional mean.
        perturbation: a fresh N(0, P) draw each call.
    """

    apply: Callable[[torch.Tensor], torch.Tensor]
    precondition: Callable[[torch.Tensor], torch.Tensor]
    rhs_mean: torch.Tensor
    perturbation: Callable[[], torch.Tensor]


class TorchGibbsEngine:
    """Engine "gibbs-torch" (see the module docstring); options as the numba sampler (seed; epochs = sweeps).

    Args:
        model: a ``BayesMF``; moved to ``device``; its tables receive the posterior mean so far.
        train: the training ratings (also the source of the implicit features and the days).
        config: training options.
        device: any torch device.

    Raises:
        ConfigError: as the numba sampler: not Bayesian MF, burn_in not below epochs, or the date feature on
            ratings without timestamps.
    """

    name = "gibbs-torch"

    def __init__(self, model: BayesMF, train: Ratings, config: TrainConfig, device: torch.device) -> None:
        check_sampler_options(model, train, config)
        cfg = model.config
        self.model = model.to(device)
        self.device = torch.device(device)
        self.rank = cfg.rank
        self.rng = np.random.default_rng(config.seed)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(config.seed)
        self.thin = max(1, -(-(config.epochs - cfg.burn_in) // cfg.samples))
        self.sweeps = 0
        self.kept = 0

        def put(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(array)).to(self.device, dtype)

        n_users, n_items = cfg.n_users, cfg.n_items
        self.users = put(train.users, torch.int64)
        self.items = put(train.items, torch.int64)
        self.ratings = put(train.ratings, torch.float64)
        if cfg.date:
            self.n_days = cfg.n_days
            self.days = put(rating_days(train.timestamps, cfg.first_day, cfg.n_days), torch.int64)
        else:
            self.n_days = 1
            self.days = torch.zeros(len(train), dtype=torch.int64, device=self.device)
        user_counts = torch.bincount(self.users, minlength=n_users).to(torch.float64)
        item_counts = torch.bincount(self.items, minlength=n_items).to(torch.float64)
        self.user_scale = user_counts.clamp(min=1).rsqrt()
        self.item_scale = item_counts.clamp(min=1).rsqrt()
        self.user_share = 1.0 / user_counts.clamp(min=1)
        self.counts = {"user_bias": user_counts, "item_bias": item_counts,
                       "day_bias": torch.bincount(self.days, minlength=self.n_days).to(torch.float64)}

        k = self.rank
        init = 0.1  # as the numba sampler: a small random start breaks the symmetry between factors
        def zeros(*shape: int) -> torch.Tensor:
            return torch.zeros(shape, dtype=torch.float64, device=self.device)

        self.state: dict[str, Any] = {
            "mu": float(train.ratings.mean()) if len(train) else 0.0,
            "alpha": 1.0,
            "user_bias": zeros(n_users), "item_bias": zeros(n_items), "day_bias": zeros(self.n_days),
            "user_factors": self._normal((n_users, k)) * init,
            "user_implicit": zeros(n_items, k),
            "item_factors": self._normal((n_items, k)) * init,
            "item_implicit": zeros(n_users, k),
            "day_factors": zeros(self.n_days, k),
        }
        for group in (*FACTOR_GROUPS, *BIAS_GROUPS):
            width = k if group in FACTOR_GROUPS else 1
            self.state[f"{group}_prior_mean"] = np.zeros(width)
            self.state[f"{group}_prior_prec"] = np.ones(width)
        self._derive()

    # ---- helpers -------------------------------------------------------------------------------------------
    def _normal(self, shape: tuple[int, ...]) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator, dtype=torch.float64, device=self.device)

    def _vector(self, values: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(values, dtype=torch.float64, device=self.device)

    def _sum_rows(self, index: torch.Tensor, values: torch.Tensor, n_rows: int) -> torch.Tensor:
        """out[g] = sum of values[r] over the ratings r with index[r] == g (any trailing shape)."""
        out = torch.zeros((n_rows, *values.shape[1:]), dtype=values.dtype, device=self.device)
        return out.index_add_(0, index, values)

    def _implicit_sum(self, scale: torch.Tensor, owners: torch.Tensor, members: torch.Tensor,
                      rows: torch.Tensor) -> torch.Tensor:
        """A v: for each owner o, scale[o] times the sum of rows[m] over its members m (one per rating)."""
        return scale[:, None] * self._sum_rows(owners, rows[members], scale.shape[0])

    def _effective(self, base: str, implicit: str, scale: torch.Tensor, owners: torch.Tensor,
                   members: torch.Tensor, enabled: bool) -> torch.Tensor:
        s = self.state
        if not enabled:
            return s[base].clone()
        return s[base] + self._implicit_sum(scale, owners, members, s[implicit])

    def _derive(self, user_side: bool = True, item_side: bool = True) -> None:
        """Recompute the effective vectors of the sides whose parameters changed, then the residuals."""
        s, cfg = self.state, self.model.config
        if user_side:
            self.user_vecs = self._effective("user_factors", "user_implicit", self.user_scale, self.users,
                                             self.items, cfg.implicit_user)
        if item_side:
            self.item_vecs = self._effective("item_factors", "item_implicit", self.item_scale, self.items,
                                             self.users, cfg.implicit_item)
        u_vec, i_vec, d_vec = self.user_vecs[self.users], self.item_vecs[self.items], s["day_factors"][self.days]
        predicted = (s["mu"] + s["user_bias"][self.users] + s["item_bias"][self.items] + s["day_bias"][self.days]
                     + (u_vec * i_vec + d_vec * (u_vec + i_vec)).sum(1))
        self.residual = self.ratings - predicted

    def _gram_and_gradient(self, key: torch.Tensor, n_rows: int, design_a: torch.Tensor, index_a: torch.Tensor,
                           design_b: torch.Tensor, index_b: torch.Tensor, weights: torch.Tensor,
                           gram: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Per row g: sum of x x^T (if ``gram``) and of x w over its ratings, x = a[index_a] + b[index_b].

        Chunked, so the rank x rank outer products never all exist at once.
        """
        k = self.rank
        grams = torch.zeros((n_rows, k * k), dtype=torch.float64, device=self.device) if gram else None
        grad = torch.zeros((n_rows, k), dtype=torch.float64, device=self.device)
        for start in range(0, key.shape[0], CHUNK):
            part = slice(start, start + CHUNK)
            x = design_a[index_a[part]] + design_b[index_b[part]]
            if grams is not None:
                grams.index_add_(0, key[part], (x[:, :, None] * x[:, None, :]).reshape(-1, k * k))
            grad.index_add_(0, key[part], x * weights[part, None])
        return (None if grams is None else grams.view(n_rows, k, k)), grad

    # ---- one sweep -----------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> float:
        """Run one Gibbs sweep and fold the sample into the model when it is kept; return its train RMSE."""
        cfg = self.model.config
        self._sample_noise_and_biases()
        # User side: the user rows see item vectors plus day vectors; then the items' implicit rows y_j.
        self._sample_side("user_factors", "user_implicit", self.users, self.items, self.item_vecs,
                          self.user_scale, cfg.n_items if cfg.implicit_user else 0)
        self._derive(item_side=False)
        self._sample_side("item_factors", "item_implicit", self.items, self.users, self.user_vecs,
                          self.item_scale, cfg.n_users if cfg.implicit_item else 0)
        self._derive(user_side=False)
        if cfg.date:
            gram, grad = self._gram_and_gradient(self.days, self.n_days, self.user_vecs, self.users,
                                                 self.item_vecs, self.items, self.residual)
            self._sample_own_rows("day_factors", gram, grad)
            self._derive(user_side=False, item_side=False)
        self._keep()
        self.sweeps += 1
        return math.sqrt(float(self.residual.square().mean())) if self.residual.numel() else 0.0

    def _sample_side(self, own: str, implicit: str, owners: torch.Tensor, members: torch.Tensor,
                     other_vecs: torch.Tensor, scale: torch.Tensor, n_implicit: int) -> None:
        """Draw a side's own rows, then (when ``n_implicit``) its implicit rows jointly."""
        s = self.state
        n_rows = s[own].shape[0]
        gram, grad = self._gram_and_gradient(owners, n_rows, other_vecs, members, s["day_factors"], self.days,
                                             self.residual)
        self._sample_own_rows(own, gram, grad)
        if n_implicit:
            self._sample_implicit(implicit, owners, members, other_vecs, scale, gram, grad)

    def _sample_own_rows(self, group: str, gram: torch.Tensor, grad: torch.Tensor) -> None:
        """Every row of a group whose rows own disjoint ratings at once; keeps ``grad`` consistent."""
        self._sample_hyper(group)
        s = self.state
        prior_prec = self._vector(s[f"{group}_prior_prec"])
        prior_mean = self._vector(s[f"{group}_prior_mean"])
        old = s[group]
        prec = s["alpha"] * gram + torch.diag(prior_prec)
        rhs = prior_prec * prior_mean + s["alpha"] * (grad + (gram @ old[:, :, None])[..., 0])
        new = self._draw(prec, rhs, self._normal(old.shape))
        grad -= (gram @ (new - old)[:, :, None])[..., 0]
        s[group] = new

    @staticmethod
    def _draw(prec: torch.Tensor, rhs: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Rows ``out ~ N(prec^-1 rhs, prec^-1)``: with prec = L L^T, out = L^-T (L^-1 rhs + noise)."""
        lower = torch.linalg.cholesky(prec)
        half = torch.linalg.solve_triangular(lower, rhs[:, :, None], upper=False)
        out = torch.linalg.solve_triangular(lower.mT, half + noise[:, :, None], upper=True)
        return out[..., 0]

    def _sample_implicit(self, group: str, owners: torch.Tensor, members: torch.Tensor, other_vecs: torch.Tensor,
                         scale: torch.Tensor, gram: torch.Tensor, grad: torch.Tensor) -> None:
        """Draw all implicit rows of ``group`` jointly by perturbation and conjugate gradients (module docstring)."""
        self._sample_hyper(group)
        problem = self._implicit_problem(group, owners, members, other_vecs, scale, gram, grad)
        rhs = problem.rhs_mean + problem.perturbation()
        self.state[group] = _conjugate_gradients(problem.apply, problem.precondition, rhs, self.state[group])

    def _implicit_problem(self, group: str, owners: torch.Tensor, members: torch.Tensor, other_vecs: torch.Tensor,
                          scale: torch.Tensor, gram: torch.Tensor, grad: torch.Tensor) -> ImplicitProblem:
        """The linear system whose perturbed solution is a draw of ``group``'s implicit rows.

        ``gram``/``grad`` are the owners' Gram matrices and gradients (residual-weighted) after their own rows
        were drawn; owner o's vector holds ``scale[o]`` times the sum of its members' implicit rows.
        """
        s = self.state
        alpha = s["alpha"]
        prior_prec = self._vector(s[f"{group}_prior_prec"])
        prior_mean = self._vector(s[f"{group}_prior_mean"])
        current = s[group]
        n_rows = current.shape[0]

        def apply_a(rows: torch.Tensor) -> torch.Tensor:  # implicit rows -> owners
            return self._implicit_sum(scale, owners, members, rows)

        def apply_at(per_owner: torch.Tensor) -> torch.Tensor:  # owners -> implicit rows
            return self._sum_rows(members, (scale[:, None] * per_owner)[owners], n_rows)

        def apply_gram(per_owner: torch.Tensor) -> torch.Tensor:
            return (gram @ per_owner[:, :, None])[..., 0]

        def precision_times(rows: torch.Tensor) -> torch.Tensor:
            return prior_prec * rows + alpha * apply_at(apply_gram(apply_a(rows)))

        def perturbation() -> torch.Tensor:
            # sqrt(prior) e0 + sqrt(alpha) A^T sum_r x_r e_r: covariance diag(prior) + alpha A^T G A = P.
            _, per_owner = self._gram_and_gradient(owners, scale.shape[0], other_vecs, members, s["day_factors"],
                                                   self.days, self._normal(owners.shape), gram=False)
            return prior_prec.sqrt() * self._normal(current.shape) + math.sqrt(alpha) * apply_at(per_owner)

        rhs_mean = prior_prec * prior_mean + alpha * apply_at(apply_gram(apply_a(current)) + grad)
        # Block-Jacobi preconditioner: row j's own precision diag(prior) + alpha sum_o scale_o^2 gram_o.
        k = self.rank
        blocks = torch.zeros((n_rows, k * k), dtype=torch.float64, device=self.device)
        for start in range(0, owners.shape[0], CHUNK):
            part = slice(start, start + CHUNK)
            o = owners[part]
            blocks.index_add_(0, members[part], (scale[o, None, None] ** 2 * gram[o]).reshape(-1, k * k))
        factor = torch.linalg.cholesky(alpha * blocks.view(n_rows, k, k) + torch.diag(prior_prec))
        return ImplicitProblem(precision_times, lambda r: torch.cholesky_solve(r[:, :, None], factor)[..., 0],
                               rhs_mean, perturbation)

    def _sample_hyper(self, group: str) -> None:
        """A group's Normal-Gamma hyperparameters given its values (as the numba sampler, on the host RNG)."""
        values = self.state[group].reshape(self.state[group].shape[0], -1)
        mean = values.mean(0)
        spread = ((values - mean) ** 2).sum(0)
        self.state[f"{group}_prior_prec"], self.state[f"{group}_prior_mean"] = draw_hyperparameters(
            self.rng, values.shape[0], mean.cpu().numpy(), spread.cpu().numpy())

    def _sample_noise_and_biases(self) -> None:
        s = self.state
        n = self.residual.shape[0]
        sse = float(self.residual @ self.residual)
        s["alpha"] = float(self.rng.gamma(PRIOR_SHAPE + 0.5 * n, 1.0 / (PRIOR_RATE + 0.5 * sse)))
        count = max(n, 1)
        shift = float(self.residual.sum()) / count + self.rng.standard_normal() / math.sqrt(s["alpha"] * count)
        s["mu"] += shift
        self.residual -= shift
        for group, index in (("user_bias", self.users), ("item_bias", self.items), ("day_bias", self.days)):
            if group == "day_bias" and not self.model.config.date:
                continue
            self._sample_hyper(group)
            bias = s[group]
            counts = self.counts[group]
            sums = self._sum_rows(index, self.residual, bias.shape[0]) + counts * bias
            prior_prec, prior_mean = s[f"{group}_prior_prec"][0], s[f"{group}_prior_mean"][0]
            prec = prior_prec + s["alpha"] * counts
            mean = (prior_prec * prior_mean + s["alpha"] * sums) / prec
            new = mean + self._normal(bias.shape) / prec.sqrt()
            self.residual -= (new - bias)[index]
            s[group] = new

    # ---- averaging into the model --------------------------------------------------------------------------
    def _keep(self) -> None:
        """Fold the current sample into the model: in burn-in it replaces slot 0, later it is averaged."""
        cfg = self.model.config
        kept = sample_slot(self.sweeps, cfg.burn_in, self.thin, self.kept, cfg.samples)
        if kept is None:
            return
        s = self.state
        day_mix = day_bias_mix = None
        if cfg.date:  # as the numba sampler: a prediction without a time averages the user's training days
            day_mix = self.user_share[:, None] * self._sum_rows(self.users, s["day_factors"][self.days],
                                                                cfg.n_users)
            day_bias_mix = (self._sum_rows(self.users, s["day_bias"][self.days], cfg.n_users) * self.user_share
                            + (self.user_vecs * day_mix).sum(1))
        means, vectors = sample_tables(s, self.user_vecs, self.item_vecs, day_mix, day_bias_mix)
        self.model.add_sample(kept, means, vectors)
        if self.sweeps >= cfg.burn_in:
            self.kept += 1

    # ---- checkpointing -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The current sample, hyperparameters and both RNGs: enough to resume the chain exactly."""
        state: dict[str, Any] = {"rng": json.dumps(self.rng.bit_generator.state), "sweeps": self.sweeps,
                                 "kept": self.kept, "generator": self.generator.get_state()}
        for key, value in self.state.items():
            if isinstance(value, torch.Tensor):
                state[key] = value.cpu()
            elif isinstance(value, np.ndarray):
                state[key] = torch.from_numpy(np.array(value))
            else:
                state[key] = value
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state saved by ``state_dict``."""
        self.rng.bit_generator.state = json.loads(state["rng"])
        self.generator.set_state(state["generator"].cpu())
        self.sweeps = int(state["sweeps"])
        self.kept = int(state["kept"])
        for key, current in self.state.items():
            value = state[key]
            if isinstance(current, torch.Tensor):
                self.state[key] = value.to(self.device, torch.float64)
            elif isinstance(current, np.ndarray):
                self.state[key] = value.numpy().astype(np.float64)
            else:
                self.state[key] = float(value)
        self._derive()


def _conjugate_gradients(apply: Callable[[torch.Tensor], torch.Tensor],
                         precondition: Callable[[torch.Tensor], torch.Tensor], rhs: torch.Tensor,
                         start: torch.Tensor) -> torch.Tensor:
    """Solve ``apply(x) = rhs`` (symmetric positive definite) by preconditioned CG from ``start``.

    Stops when r^T M^-1 r, which approximates the squared error in the norm of ``apply`` (M ~ the operator),
    is below (CG_TOLERANCE^2 x dimension); checked every CG_CHECK_EVERY iterations (a host sync each).

    Raises:
        ConfigError: no convergence within CG_MAX_ITERATIONS (the precision is numerically singular).
    """
    x = start.clone()
    r = rhs - apply(x)
    z = precondition(r)
    p = z.clone()
    rz = (r * z).sum()
    target = CG_TOLERANCE**2 * rhs.numel()
    if float(rz) <= target:
        return x
    for iteration in range(1, CG_MAX_ITERATIONS + 1):
        ap = apply(p)
        step = rz / (p * ap).sum()
        x += step * p
        r -= step * ap
        z = precondition(r)
        rz_next = (r * z).sum()
        if iteration % CG_CHECK_EVERY == 0 and float(rz_next) <= target:
            return x
        p = z + (rz_next / rz) * p
        rz = rz_next
    if float(rz) <= target:
        return x
    raise ConfigError(f"the implicit-row draw did not converge in {CG_MAX_ITERATIONS} conjugate-gradient steps")
