"""What the implicit-feedback factor models (BPR, iALS) share: a user and an item table whose dot product scores.

``score(u, i) = <p_u, q_i> (+ b_i)``. The score only orders items for a user (``output_kind = "score"``): it is
not a rating and nothing clips it. A new user is folded in by computing a vector ``p`` from the items they
interacted with while the item side stays fixed (``fold_in_user``, model-specific: a closed-form solve for
iALS, a few gradient steps for BPR); ``score_user_vectors`` then scores every item for such vectors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from deepmf.errors import ConfigError
from deepmf.models.base import RatingModel
from deepmf.models.foldin import VectorFoldIn
from deepmf.models.layers import ModelConfig, check_positive


@dataclass(kw_only=True)
class FactorConfig(ModelConfig):
    """Shapes and options of a factor model for implicit feedback.

    Attributes:
        factors: latent dimension K.
        init_std: standard deviation of the normal initialisation; None: 0.1 / sqrt(K) (Rendle et al. 2021).
    """

    factors: int = 64
    init_std: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("factors", self.factors)
        if self.init_std is not None and not self.init_std >= 0:
            raise ConfigError(f"init_std must be >= 0, got {self.init_std}")


class FactorModel(VectorFoldIn, RatingModel):
    """User and item factor tables (and an optional item bias) scoring by the dot product."""

    config_class: ClassVar[Any] = FactorConfig
    output_kind = "score"
    feedbacks = ("implicit",)
    # Whether the model has an item bias (BPR learns one; iALS has none).
    has_item_bias: ClassVar[bool] = False

    def __init__(self, config: FactorConfig) -> None:
        super().__init__()
        self.config = config
        std = 0.1 / math.sqrt(config.factors) if config.init_std is None else config.init_std
        # Filled in place by compiled engines through numpy views: no gradients needed.
        self.user_factors = nn.Embedding(config.n_users, config.factors)
        self.item_factors = nn.Embedding(config.n_items, config.factors)
        for table in (self.user_factors, self.item_factors):
            nn.init.normal_(table.weight, 0.0, std)
            table.weight.requires_grad_(False)
        if self.has_item_bias:
            self.item_bias = nn.Embedding(config.n_items, 1)
            nn.init.zeros_(self.item_bias.weight)
            self.item_bias.weight.requires_grad_(False)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        score = (self.user_factors(users) * self.item_factors(items)).sum(dim=-1)
        if self.has_item_bias:
            score = score + self.item_bias(items).squeeze(-1)
        return score

    @torch.no_grad()
    def score_user_vectors(self, vectors: torch.Tensor) -> torch.Tensor:
        """Every item's score for user vectors (B, K), e.g. from ``fold_in_user``: (B, n_items)."""
        scores = vectors.to(self.item_factors.weight) @ self.item_factors.weight.T
        if self.has_item_bias:
            scores += self.item_bias.weight.T
        return scores

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor) -> torch.Tensor:
        """(B, n_items) scores as one matrix product."""
        return self.score_user_vectors(self.user_factors(users))

    def fold_in_user(self, items: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """The vector (K,) of a user who interacted with ``items`` (weights: event counts), items fixed."""
        raise NotImplementedError  # pragma: no cover - each model has its own

    def item_embeddings(self) -> torch.Tensor:
        return self.item_factors.weight.detach()

    def user_embeddings(self) -> torch.Tensor:
        return self.user_factors.weight.detach()


def fold_in_inputs(model: RatingModel, items: torch.Tensor | Any,
                   weights: torch.Tensor | Any | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Checked ``(items int64, weights float32)`` of a fold-in, on the model's device.

    Raises:
        ConfigError: an item index outside the model, repeated items, lengths that differ, or a weight <= 0.
    """
    device = next(model.buffers(), next(model.parameters(), torch.empty(0))).device
    items = torch.as_tensor(items, dtype=torch.int64, device=device).reshape(-1)
    weights = (torch.ones(len(items), device=device) if weights is None
               else torch.as_tensor(weights, dtype=torch.float32, device=device).reshape(-1))
    if len(weights) != len(items):
        raise ConfigError(f"got {len(items)} items but {len(weights)} weights")
    if len(items) and (int(items.min()) < 0 or int(items.max()) >= model.config.n_items):
        raise ConfigError(f"item indices must be in 0..{model.config.n_items - 1}")
    if len(torch.unique(items)) != len(items):
        raise ConfigError("each item may appear once in a fold-in (give repeats as a weight)")
    if len(weights) and not bool((weights > 0).all()):
        raise ConfigError("fold-in weights must be positive")
    return items, weights
