"""Matrix factorization: a rating is the dot product of a user and an item vector, plus optional biases.

Covers the tutorials' MF variants: biased MF with a global mean (001, 002), output squashed into the rating
range by a scaled sigmoid (002, fastai's ``y_range``), and the bare dot product without any bias (000, 003).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from deepmf.errors import ConfigError
from deepmf.models.base import RatingModel
from deepmf.models.bilinear import fit_bilinear_user
from deepmf.models.foldin import FoldInContext
from deepmf.models.layers import FastEmbedding, ModelConfig, check_positive


@dataclass(kw_only=True)
class MFConfig(ModelConfig):
    """Shapes and options of an MF model.

    Attributes:
        factors: latent dimension K.
        bias: user, item and global biases; False gives the bare dot product.
        sigmoid: squash the output into the rating range with a scaled sigmoid.
        init_std: standard deviation of the normal initialisation of the factors.
    """

    factors: int = 32
    bias: bool = True
    sigmoid: bool = False
    init_std: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("factors", self.factors)
        if not self.init_std >= 0:
            raise ConfigError(f"init_std must be >= 0, got {self.init_std}")


class MF(RatingModel):
    """Biased (or bare) matrix factorization.

    ``predict(u, i) = g(mu + b_u + b_i + p_u . q_i)`` where g is the identity, or with ``sigmoid`` the map
    ``lo + (hi - lo) * sigmoid(x)`` onto a range half a step wider than the rating scale on each side (so the
    extreme ratings are reachable with finite logits).
    """

    name: ClassVar[str] = "mf"
    config_class: ClassVar[Any] = MFConfig
    # Adam at a large batch for the torch engine; the numba engine runs SGD with the same lr and l2.
    # Tuned on ML-100K u1 (validation carved from u1.base): test RMSE 0.935 (torch engine), 0.929 (numba).
    default_train: ClassVar[dict[str, Any]] = {"optimizer": "adam", "lr": 0.02, "l2": 0.1,
                                               "batch_size": 4096, "epochs": 40, "patience": 3}

    def __init__(self, config: MFConfig) -> None:
        super().__init__()
        self.config = config
        self.user_factors = FastEmbedding(config.n_users, config.factors)
        self.item_factors = FastEmbedding(config.n_items, config.factors)
        nn.init.normal_(self.user_factors.weight, 0.0, config.init_std)
        nn.init.normal_(self.item_factors.weight, 0.0, config.init_std)
        half_step = config.rating_step / 2
        self.low = config.rating_min - half_step
        self.span = config.rating_max + half_step - self.low
        if config.bias:
            self.user_bias = FastEmbedding(config.n_users, 1)
            self.item_bias = FastEmbedding(config.n_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
            start = config.global_mean
            if config.sigmoid:  # start the squashed output at the training mean
                fraction = min(max((start - self.low) / self.span, 1e-3), 1 - 1e-3)
                start = math.log(fraction / (1 - fraction))
            self.global_bias = nn.Parameter(torch.tensor(float(start)))

    @property
    def engines(self) -> tuple[str, ...]:  # type: ignore[override]
        # The numba and Triton kernels implement exactly the biased, unsquashed model.
        if self.config.bias and not self.config.sigmoid:
            return ("cuda-sgd", "numba", "torch")
        return ("torch",)

    def _squash(self, raw: torch.Tensor) -> torch.Tensor:
        return self.low + self.span * torch.sigmoid(raw) if self.config.sigmoid else raw

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        raw = (self.user_factors(users) * self.item_factors(items)).sum(dim=-1)
        if self.config.bias:
            raw = raw + self.user_bias(users).squeeze(-1) + self.item_bias(items).squeeze(-1)
            raw = raw + self.global_bias
        return self._squash(raw)

    def regularization(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Mean over the batch of ``|p_u|^2 + |q_i|^2 (+ b_u^2 + b_i^2)``: classic per-rating L2."""
        penalty = self.user_factors(users).pow(2).sum(-1) + self.item_factors(items).pow(2).sum(-1)
        if self.config.bias:
            penalty = penalty + self.user_bias(users).squeeze(-1).pow(2)
            penalty = penalty + self.item_bias(items).squeeze(-1).pow(2)
        return penalty.mean()

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor) -> torch.Tensor:
        """(B, n_items) scores as one matrix product.

        The item biases ride in the product (``addmm``) and the user's bias plus the global one are added in
        place: no (B, n_items) temporaries, which made scoring every user of a 20M-rating model 2.5x slower.
        """
        factors = self.user_factors(users)
        if not self.config.bias:
            return self._squash(factors @ self.item_factors.weight.T)
        raw = torch.addmm(self.item_bias.weight.T, factors, self.item_factors.weight.T)
        return self._squash(raw.add_(self.user_bias(users) + self.global_bias))

    def item_embeddings(self) -> torch.Tensor:
        return self.item_factors.weight.detach()

    def user_embeddings(self) -> torch.Tensor:
        return self.user_factors.weight.detach()

    def user_rows(self) -> dict[str, torch.Tensor]:
        rows = {"user_factors.weight": self.user_factors.weight.detach().mean(0, keepdim=True)}
        if self.config.bias:
            rows["user_bias.weight"] = self.user_bias.weight.detach().mean(0, keepdim=True)
        return rows

    def fold_in(self, items: torch.Tensor, ratings: torch.Tensor, context: FoldInContext) -> RatingModel:
        """Closed form (ridge of p_u and b_u against the fixed q_i, b_i, mu with the training L2); with the
        sigmoid the prediction is not linear in the user, so gradient steps on his rows (the default)."""
        if self.config.sigmoid:
            return super().fold_in(items, ratings, context)
        with torch.no_grad():
            penalty = context.user_penalty(len(items))
            if not self.config.bias:
                zeros = self.item_factors.weight.new_zeros(self.config.n_items)
                return fit_bilinear_user(self, self.item_factors.weight, zeros, zeros.new_zeros(()), items,
                                         ratings, penalty, None)
            return fit_bilinear_user(self, self.item_factors.weight, self.item_bias.weight[:, 0],
                                     self.global_bias, items, ratings, penalty, penalty)

    def bias_terms(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        # With the sigmoid the biases live in logit space, not rating units: no additive fallback exists.
        if not self.config.bias or self.config.sigmoid:
            return None
        return (self.global_bias.detach(), self.user_bias.weight.detach().squeeze(-1),
                self.item_bias.weight.detach().squeeze(-1))
