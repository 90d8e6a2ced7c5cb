"""The popularity baseline: every user gets the items most users interacted with in training.

Any implicit-feedback model that cannot beat it has learned nothing personal; ``deepmf compare`` prints it
beside the models for that reason. It has no user state, so folding a new user in is free: the list is the
same for everyone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from deepmf.models.base import RatingModel
from deepmf.models.factors import fold_in_inputs
from deepmf.models.foldin import VectorFoldIn
from deepmf.models.layers import ModelConfig

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings


@dataclass(kw_only=True)
class PopConfig(ModelConfig):
    """Shapes of the popularity baseline (it has no options)."""


class Pop(VectorFoldIn, RatingModel):
    """``score(u, i)`` = the number of training users who interacted with item i."""

    name: ClassVar[str] = "pop"
    config_class: ClassVar[Any] = PopConfig
    engines = ("closed",)
    output_kind = "score"
    feedbacks = ("implicit",)
    default_train: ClassVar[dict[str, Any]] = {"epochs": 1, "patience": 0}

    def __init__(self, config: PopConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("popularity", torch.zeros(config.n_items))

    @torch.no_grad()
    def solve(self, train: Ratings) -> None:
        """Count each item's training users."""
        counts = np.bincount(train.items, minlength=self.config.n_items).astype(np.float32)
        self.popularity.copy_(torch.from_numpy(counts))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.popularity[items]

    @torch.no_grad()
    def score_user_vectors(self, vectors: torch.Tensor) -> torch.Tensor:
        """(B, n_items): the popularity of every item, whatever the (empty) user vectors."""
        return self.popularity.expand(len(vectors), -1).clone()

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor) -> torch.Tensor:
        return self.popularity.expand(len(users), -1).clone()

    @torch.no_grad()
    def fold_in_user(self, items: torch.Tensor | Any, weights: torch.Tensor | Any | None = None) -> torch.Tensor:
        """An empty vector: the popularity list needs nothing of the user (the inputs are still checked)."""
        fold_in_inputs(self, items, weights)
        return torch.zeros(0, device=self.popularity.device)
