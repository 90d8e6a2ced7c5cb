"""NeuMF (He et al. 2017, "Neural Collaborative Filtering", cited by tutorial 003) for explicit ratings.

Two towers share the output layer: GMF, the element-wise product of a user and an item vector (a
generalised dot product), and an MLP over concatenated user and item embeddings (plus side features). Their
last layers are concatenated into one Linear that gives the rating (with optional biases) or logits over
rating values.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from deepmf.models.deep import DeepConfig, DeepModel
from deepmf.models.layers import mlp


class NeuMF(DeepModel):
    """GMF (``factors``) + MLP (``user_dim``/``item_dim`` → ``layers``) fused by one output layer."""

    name: ClassVar[str] = "neumf"
    user_tables: ClassVar[tuple[str, ...]] = ("gmf_user", "mlp_user")
    item_tables: ClassVar[tuple[str, ...]] = ("gmf_item", "mlp_item")
    tower_tables: ClassVar[tuple[str, ...]] = ("mlp_user", "mlp_item")

    def __init__(self, config: DeepConfig) -> None:
        super().__init__(config)
        user_dim, item_dim = int(config.user_dim), int(config.item_dim)  # resolved by DeepConfig
        self.gmf_user = self.embedding(config.n_users, config.factors)
        self.gmf_item = self.embedding(config.n_items, config.factors)
        self.mlp_user = self.embedding(config.n_users, user_dim)
        self.mlp_item = self.embedding(config.n_items, item_dim)
        in_width = user_dim + item_dim + self.side.width
        self.tower = mlp(in_width, config.layers, batchnorm=config.batchnorm, dropout=config.dropout)
        self.output = self.output_layer(config.factors + config.layers[-1])

    def compute(self, users: torch.Tensor, items: torch.Tensor, used: list[torch.Tensor] | None) -> torch.Tensor:
        inputs = torch.cat([self.lookup(self.mlp_user, users, used), self.lookup(self.mlp_item, items, used),
                            *self.side(users, items)], dim=-1)
        return self.finish(self.output(self.head_input(users, items, self.tower(inputs), used)), users, items, used)

    def head_input(self, users: torch.Tensor, items: torch.Tensor, tower: torch.Tensor,
                   used: list[torch.Tensor] | None = None) -> torch.Tensor:
        """The GMF product of the pairs beside the tower's output."""
        gmf = self.lookup(self.gmf_user, users, used) * self.lookup(self.gmf_item, items, used)
        return torch.cat([gmf, tower], dim=-1)

    def item_embeddings(self) -> torch.Tensor:
        return torch.cat([self.gmf_item.weight, self.mlp_item.weight], dim=-1).detach()

    def user_embeddings(self) -> torch.Tensor:
        return torch.cat([self.gmf_user.weight, self.mlp_user.weight], dim=-1).detach()
