"""BPR-MF (Rendle et al. 2009, "BPR: Bayesian Personalized Ranking from Implicit Feedback").

``score(u, i) = <p_u, q_i> + b_i``, trained to rank each observed item i above an unobserved item j drawn
uniformly from the items the user never interacted with (never one of their positives), by stochastic gradient
ascent on ``ln sigmoid(score(u, i) - score(u, j)) - l2 (|p_u|^2 + |q_i|^2 + |q_j|^2 + b_i^2 + b_j^2) / 2`` in
the compiled engine ``deepmf.training.engines.numba_bpr``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from deepmf.models.factors import FactorConfig, FactorModel, fold_in_inputs


@dataclass(kw_only=True)
class BPRConfig(FactorConfig):
    """Shapes of a BPR model (learning rate, l2, epochs and negatives are training options)."""


class BPR(FactorModel):
    """BPR-MF with an item bias; see the module docstring."""

    name: ClassVar[str] = "bpr"
    config_class: ClassVar[Any] = BPRConfig
    engines = ("bpr",)
    has_item_bias = True
    # Defaults from bench/implicit.py's search on ML-100K validation carved from training (see BENCHMARKS.md);
    # early stopping on validation NDCG@10 picks the epoch, with patience for its noisy curve (BPR improves
    # slowly on long-tailed catalogues such as ml-latest-small's).
    default_train: ClassVar[dict[str, Any]] = {"optimizer": "sgd", "lr": 0.05, "l2": 0.005, "epochs": 200,
                                               "patience": 10}

    @torch.no_grad()
    def fold_in_user(self, items: torch.Tensor | Any, weights: torch.Tensor | Any | None = None, *,
                     steps: int = 100, lr: float = 0.5, l2: float = 0.005, seed: int = 0) -> torch.Tensor:
        """A vector (K,) for a user who interacted with ``items``, by BPR gradient steps with the items fixed.

        Starting from zero, each of ``steps`` full-batch steps draws one negative per positive uniformly from
        the items not in ``items`` and moves the vector up the gradient of the mean of
        ``weight_i ln sigmoid(score_i - score_j)`` minus ``l2 |p|^2 / 2``. Deterministic for a given ``seed``.
        Fewer than one unobserved item (the user has everything), or no items, give the zero vector.

        Args:
            items: item indices the user interacted with (each once).
            weights: event counts per item (default 1), weighing each positive's term.
            steps: gradient steps.
            lr: step size of the mean gradient.
            l2: L2 strength on the user vector.
            seed: seed of the negatives.

        Raises:
            ConfigError: bad indices or weights.
        """
        items, weights = fold_in_inputs(self, items, weights)
        factors = self.item_factors.weight
        bias = self.item_bias.weight.squeeze(-1)
        vector = torch.zeros(self.config.factors, device=factors.device)
        unseen = torch.ones(self.config.n_items, dtype=torch.bool, device=factors.device)
        unseen[items] = False
        candidates = torch.nonzero(unseen).squeeze(-1)
        if len(items) == 0 or len(candidates) == 0:
            return vector
        generator = torch.Generator(device=factors.device).manual_seed(seed)
        positive = factors[items]
        share = weights / weights.sum()
        for _ in range(steps):
            negative = candidates[torch.randint(len(candidates), (len(items),), generator=generator,
                                                device=factors.device)]
            difference = positive - factors[negative]
            margin = difference @ vector + bias[items] - bias[negative]
            gradient = (share * torch.sigmoid(-margin)) @ difference - l2 * vector
            vector += lr * gradient
        return vector
