"""SVD++ (Koren 2008): biased MF whose user vector also sums the items the user rated (implicit feedback).

``predict(u, i) = mu + b_u + b_i + <p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j, q_i>`` with N(u) the items u rated
in training. The parameters carry the biased-MF names (``user_factors``, ``item_factors``, ``user_bias``,
``item_bias``, ``global_bias``) plus ``implicit_factors`` (the y_j), and N(u) is stored as a CSR of buffers
filled from the training ratings, so a saved model is complete. The effective vectors of a batch of users
are one embedding bag over their rows of that CSR, so ranking every item is one matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from deepmf.errors import ConfigError
from deepmf.models.bilinear import BilinearModel, csr_bags
from deepmf.models.layers import ModelConfig, check_positive

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings


@dataclass(kw_only=True)
class SVDppConfig(ModelConfig):
    """Shapes and options of SVD++.

    Attributes:
        factors: latent dimension.
        n_ratings: training ratings whose (user, item) pairs form the implicit feedback (filled from the
        data). init_std: standard deviation of the normal initialisation of p, q and y.
    """

    factors: int = 25
    n_ratings: int = 0
    init_std: float = 0.1

    data_fields = (*ModelConfig.data_fields, "n_ratings")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("factors", self.factors)
        if not self.init_std >= 0:
            raise ConfigError(f"init_std must be >= 0, got {self.init_std}")

    @classmethod
    def data_values(cls, data: Ratings) -> dict[str, Any]:
        return {**super().data_values(data), "n_ratings": len(data)}


class SVDpp(BilinearModel):
    """SVD++ with implicit feedback from the training ratings."""

    name: ClassVar[str] = "svdpp"
    config_class: ClassVar[Any] = SVDppConfig
    engines = ("svdpp", "torch")
    # Its defaults are for per-rating SGD: with them the torch engine ends at u1 test RMSE 0.991 after 200
    # epochs (the compiled engine: 0.924), so torchrun does not switch SVD++ to it unasked.
    tuned_engines = ("svdpp",)
    # Per-rating SGD in the compiled engine (lr, l2 = reg); early stopping on the carved validation ratings.
    # factors, lr and l2 from `deepmf tune ml-100k --model svdpp --trials 20 --split u1` (validation 0.9125).
    default_train: ClassVar[dict[str, Any]] = {"lr": 0.0023, "l2": 0.07, "epochs": 200, "patience": 10,
                                               "optimizer": "sgd", "batch_size": 1024}

    def __init__(self, config: SVDppConfig) -> None:
        super().__init__()
        self.config = config
        self.user_factors = nn.Embedding(config.n_users, config.factors)
        self.item_factors = nn.Embedding(config.n_items, config.factors)
        self.implicit_factors = nn.Embedding(config.n_items, config.factors)
        self.user_bias = nn.Embedding(config.n_users, 1)
        self.item_bias = nn.Embedding(config.n_items, 1)
        self.global_bias = nn.Parameter(torch.tensor(float(config.global_mean)))
        for table in (self.user_factors, self.item_factors, self.implicit_factors):
            nn.init.normal_(table.weight, 0.0, config.init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        self.register_buffer("user_ptr", torch.zeros(config.n_users + 1, dtype=torch.int64))
        self.register_buffer("user_items", torch.zeros(config.n_ratings, dtype=torch.int64))

    def fill(self, data: Ratings) -> None:
        """Store which items each user rated in ``data`` (the training ratings) as a user -> items CSR."""
        order = np.argsort(data.users, kind="stable")
        counts = np.bincount(data.users, minlength=self.config.n_users)
        with torch.no_grad():
            self.user_ptr[1:] = torch.from_numpy(np.cumsum(counts))
            self.user_items.copy_(torch.from_numpy(data.items[order].astype(np.int64)))

    def implicit_scale(self) -> torch.Tensor:
        """|N(u)|^-1/2 per user (0 for users with no training ratings)."""
        counts = (self.user_ptr[1:] - self.user_ptr[:-1]).to(self.implicit_factors.weight.dtype)
        return torch.where(counts > 0, counts.clamp(min=1).rsqrt(), torch.zeros_like(counts))

    def effective_user_factors(self, users: torch.Tensor | None = None) -> torch.Tensor:
        """p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j for ``users`` (all users when None), (B, factors)."""
        if users is None:
            users = torch.arange(self.config.n_users, device=self.user_ptr.device)
        positions, offsets = csr_bags(self.user_ptr, users)
        implicit = nn.functional.embedding_bag(self.user_items[positions], self.implicit_factors.weight,
                                               offsets, mode="sum")
        return self.user_factors(users) + self.implicit_scale()[users].unsqueeze(1) * implicit

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        # Each distinct user's implicit sum once, however often the batch repeats him.
        distinct, inverse = torch.unique(users, return_inverse=True)
        return self.effective_user_factors(distinct)[inverse]

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        return self.item_factors.weight if items is None else self.item_factors(items)

    def offsets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.global_bias, self.user_bias.weight[:, 0], self.item_bias.weight[:, 0]

    def fold_in_fixed_vector(self, items: torch.Tensor) -> torch.Tensor:
        """A new user's implicit part: |N(u)|^-1/2 sum of y_j over the items he rated (fold-in fits p_u)."""
        return self.implicit_factors.weight[items].sum(0) / len(items) ** 0.5

    def regularization(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Mean per-rating L2 of the rows a batch used (the torch engine's ``l2``); y is penalised whole."""
        penalty = self.user_factors(users).pow(2).sum(-1) + self.item_factors(items).pow(2).sum(-1)
        biases = self.user_bias(users).squeeze(-1).pow(2) + self.item_bias(items).squeeze(-1).pow(2)
        penalty = penalty + biases
        return penalty.mean() + self.implicit_factors.weight.pow(2).sum() / max(self.config.n_ratings, 1)
