"""Implicit ALS (Hu, Koren and Volinsky 2008) in the formulation of Rendle et al. 2021, "Revisiting the
Performance of iALS on Item Recommendation Benchmarks".

The model scores ``<w_u, h_i>`` and minimises, over the observed pairs S and all pairs U x I,

    L = sum_{(u,i) in S} c_ui (<w_u, h_i> - 1)^2  +  alpha0 sum_{u in U} sum_{i in I} <w_u, h_i>^2
        + reg ( sum_u (|I_u| + alpha0 |I|)^nu |w_u|^2  +  sum_i (|U_i| + alpha0 |U|)^nu |h_i|^2 )

- ``alpha0`` weighs the unobserved (all) pairs against the observed ones: Rendle et al.'s alpha_0;
- ``c_ui = 1 + alpha x count_ui`` is Hu et al.'s confidence of a pair seen ``count_ui`` times; with
  ``alpha = 0`` (the default) every observed pair weighs 1 and L is exactly Rendle et al.'s loss;
- the regularization of a row grows with its number of observations plus ``alpha0`` times the size of the
  other side, to the power ``nu``: Rendle et al.'s frequency-scaled regularization (``nu = 1`` in their
  tuned runs; ``nu = 0`` gives the classic constant ``reg``).

With one side fixed the loss is quadratic in each row of the other side, with the normal equations

    (alpha0 G + sum_{i in I_u} c_ui h_i h_i^T + lambda_u I) w_u = sum_{i in I_u} c_ui h_i,   G = H^T H,

which the engine (``deepmf.training.engines.ials``) solves approximately by a few conjugate-gradient steps
warm-started from the current row (Takacs et al. 2011), never forming the matrix; ``fold_in_user`` solves the
same system exactly for one new user against the trained item factors.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from deepmf.errors import ConfigError
from deepmf.models.factors import FactorConfig, FactorModel, fold_in_inputs
from deepmf.models.layers import check_positive


@dataclass(kw_only=True)
class IALSConfig(FactorConfig):
    """Shapes and loss of an iALS model (see the module docstring for the loss).

    Defaults: on the validation carves of bench/implicit.py (20 % of each user's training interactions),
    factors 128, reg 0.01, alpha0 0.3 scored NDCG@10 0.207 on ML-100K and 0.180 on ml-latest-small, against
    0.198 / 0.176 for ML-100K's tuned values rounded (reg 0.007, alpha0 0.5) and 0.185 / 0.179 with alpha0 0.1.

    Attributes:
        reg: regularization strength ``reg``.
        alpha0: weight of the unobserved pairs.
        nu: exponent of the frequency scaling of the regularization.
        alpha: confidence per event: ``c = 1 + alpha x count``.
        cg_steps: conjugate-gradient steps per row and half-iteration in training (3, as ``implicit``).
    """

    factors: int = 128
    reg: float = 0.01
    alpha0: float = 0.3
    nu: float = 1.0
    alpha: float = 0.0
    cg_steps: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("reg", "alpha0", "nu", "alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        check_positive("cg_steps", self.cg_steps)
        if self.reg == 0 and self.alpha0 == 0:
            raise ConfigError("iALS needs reg > 0 or alpha0 > 0: otherwise a row's system can be singular")


class IALS(FactorModel):
    """iALS: ``score(u, i) = <w_u, h_i>``, trained by alternating conjugate-gradient solves."""

    name: ClassVar[str] = "ials"
    config_class: ClassVar[Any] = IALSConfig
    engines = ("ials",)
    # One epoch is one iteration (items, then users); 20 iterations (validation NDCG flattens by then).
    default_train: ClassVar[dict[str, Any]] = {"epochs": 20, "patience": 0}

    def confidence(self, weights: np.ndarray | torch.Tensor) -> Any:
        """``c = 1 + alpha x weight`` of observed pairs seen ``weight`` times."""
        return 1.0 + self.config.alpha * weights

    def row_regularization(self, n_observed: np.ndarray | int, n_other: int) -> Any:
        """``reg (n_observed + alpha0 n_other)^nu`` of rows with ``n_observed`` observations each."""
        cfg = self.config
        return cfg.reg * (n_observed + cfg.alpha0 * n_other) ** cfg.nu

    @torch.no_grad()
    def fold_in_user(self, items: torch.Tensor | Any, weights: torch.Tensor | Any | None = None) -> torch.Tensor:
        """The exact iALS solution (K,) for a user who interacted with ``items``, item factors fixed.

        Solves ``(alpha0 G + sum c_i h_i h_i^T + lambda_u I) w = sum c_i h_i`` in float64 (``G = H^T H`` over
        every item, ``lambda_u = reg (n + alpha0 n_items)^nu``): a K x K system, the same a training user's
        row converges to. A user with no items gets the zero vector (the minimiser of the empty loss).

        Args:
            items: item indices the user interacted with (each once).
            weights: event counts per item (default 1); they enter through the confidence ``c``.

        Raises:
            ConfigError: bad indices or weights.
        """
        items, weights = fold_in_inputs(self, items, weights)
        factors = self.item_factors.weight.double()
        if len(items) == 0:
            return torch.zeros(self.config.factors, device=factors.device)
        cfg = self.config
        chosen = factors[items]
        confidence = self.confidence(weights.double())
        system = cfg.alpha0 * (factors.T @ factors) + (chosen.T * confidence) @ chosen
        system.diagonal().add_(float(self.row_regularization(len(items), cfg.n_items)))
        return torch.linalg.solve(system, chosen.T @ confidence).float()
