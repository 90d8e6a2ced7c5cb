"""Bayesian matrix factorization (BPMF, Salakhutdinov & Mnih 2008) with SVD++-style implicit features on both
sides and a day-of-rating feature (Rendle et al. 2019), trained by Gibbs sampling (training/engines/gibbs.py).

The trained model is the posterior mean of the sampled predictions. Averaged over S kept samples, the
prediction ``mu_s + b_us + c_is + <U_us, V_is>`` is
``mean(mu) + mean(b_u) + mean(c_i) + <[U_u1..U_uS], [V_i1..V_iS]> / S``, so the model stores the S samples of
the effective user and item vectors side by side, each scaled by 1/sqrt(S): prediction, ranking (one matrix
product) and similar-items need nothing else. Implicit and date features are
folded into those vectors by the sampler (see its docstring), so this module is only the container.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from deepmf.errors import ConfigError
from deepmf.models.bilinear import BilinearModel
from deepmf.models.layers import ModelConfig, check_positive


@dataclass(kw_only=True)
class BayesMFConfig(ModelConfig):
    """Shapes and sampler settings of a Bayesian MF.

    Attributes:
        rank: factors per sample.
        samples: posterior samples kept (the stored vectors have ``rank * samples`` columns); the sweeps after
            burn-in are thinned evenly down to this many.
        burn_in: sweeps discarded before averaging starts.
        implicit_user: add the items each user rated (SVD++) to his vector.
        implicit_item: add the users who rated each item ("flipped" SVD++) to its vector.
        date: model the day of each rating (bias and factors per day). A prediction without a time is the mean
            of the user's predictions over the days he rated on in training.
    """

    rank: int = 10
    samples: int = 50
    burn_in: int = 20
    implicit_user: bool = True
    implicit_item: bool = True
    date: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("rank", self.rank)
        check_positive("samples", self.samples)
        if isinstance(self.burn_in, bool) or not isinstance(self.burn_in, int) or self.burn_in < 0:
            raise ConfigError(f"burn_in must be a non-negative integer, got {self.burn_in!r}")


class BayesMF(BilinearModel):
    """Posterior-mean Bayesian MF; parameters are named as in biased MF (``user_factors``, ``item_factors``,
    ``user_bias``, ``item_bias``, ``global_bias``) but are filled by the sampler, not by gradients.
    """

    name: ClassVar[str] = "bayes"
    config_class: ClassVar[Any] = BayesMFConfig
    engines = ("gibbs",)
    # One epoch is one sweep. Priors are sampled, so nothing else needs tuning; patience stays 0 because the
    # posterior average only improves with more samples; the sampler runs on the CPU.
    default_train: ClassVar[dict[str, Any]] = {"epochs": 200, "patience": 0, "device": "cpu"}

    def __init__(self, config: BayesMFConfig) -> None:
        super().__init__()
        self.config = config
        width = config.rank * config.samples
        self.user_factors = nn.Embedding(config.n_users, width)
        self.item_factors = nn.Embedding(config.n_items, width)
        self.user_bias = nn.Embedding(config.n_users, 1)
        self.item_bias = nn.Embedding(config.n_items, 1)
        self.global_bias = nn.Parameter(torch.zeros(()), requires_grad=False)
        for embedding in (self.user_factors, self.item_factors, self.user_bias, self.item_bias):
            nn.init.zeros_(embedding.weight)
            embedding.weight.requires_grad_(False)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_factors(users)

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        return self.item_factors.weight if items is None else self.item_factors(items)

    def offsets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.global_bias, self.user_bias.weight[:, 0], self.item_bias.weight[:, 0]

    @torch.no_grad()
    def add_sample(self, kept: int, global_mean: float, user_bias: np.ndarray, item_bias: np.ndarray,
                   user_vectors: np.ndarray, item_vectors: np.ndarray) -> None:
        """Average one posterior sample into the model, ``kept`` samples being in it already.

        ``kept == 0`` replaces whatever is there (the sampler shows its burn-in samples this way). Slot
        ``kept`` receives the new vectors; the earlier slots are rescaled so each slot weighs 1/sqrt(kept+1).

        Raises:
            ConfigError: ``kept`` is outside ``0..samples-1`` or the vectors have the wrong shape.
        """
        cfg = self.config
        if not 0 <= kept < cfg.samples:
            raise ConfigError(f"bayes: sample slot {kept} outside 0..{cfg.samples - 1}")
        if user_vectors.shape != (cfg.n_users, cfg.rank) or item_vectors.shape != (cfg.n_items, cfg.rank):
            raise ConfigError(f"bayes: sample vectors must be ({cfg.n_users}, {cfg.rank}) and "
                              f"({cfg.n_items}, {cfg.rank}), got {user_vectors.shape}, {item_vectors.shape}")
        weight = 1.0 / (kept + 1)
        block = slice(kept * cfg.rank, (kept + 1) * cfg.rank)
        factor_tables = ((self.user_factors.weight, user_vectors), (self.item_factors.weight, item_vectors))
        for table, vectors in factor_tables:
            if kept == 0:
                table.zero_()
            else:
                table[:, : block.start].mul_(float(np.sqrt(kept * weight)))
            table[:, block] = torch.as_tensor(vectors * np.sqrt(weight), dtype=table.dtype)
        bias_tables = ((self.user_bias.weight[:, 0], user_bias), (self.item_bias.weight[:, 0], item_bias))
        for table, values in bias_tables:
            table.mul_(1.0 - weight).add_(torch.as_tensor(values * weight, dtype=table.dtype))
        self.global_bias.mul_(1.0 - weight).add_(global_mean * weight)
