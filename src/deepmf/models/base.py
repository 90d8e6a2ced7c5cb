"""The contract every rating model satisfies. Models are plain ``torch.nn.Module``s: no files, no CLI, no trainer.

A model is rebuilt from ``(name, config)``: ``config`` is a JSON-able dataclass holding every shape
(n_users, n_items, side-feature vocab sizes) and hyperparameter, and side-feature lookup tables are registered
buffers, so ``state_dict()`` + ``config`` fully describe a trained model (see deepmf.io).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any, ClassVar

import torch
from torch import nn


class RatingModel(nn.Module):
    """Base class of all models.

    Subclasses set ``name`` (the registry key) and ``self.config`` and implement ``forward``.
    ``head`` is "regression" (forward gives ratings, shape (B,)) or "classification" (forward gives logits,
    shape (B, n_classes), and buffer ``class_values`` maps classes to ratings).
    """

    name: ClassVar[str] = "base"
    config: Any
    head: str = "regression"

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # ---- training --------------------------------------------------------------------------------------------
    def loss(self, output: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch: squared error for regression, cross-entropy over rating classes otherwise."""
        if self.head == "classification":
            classes = torch.bucketize(ratings, self.class_boundaries)
            return nn.functional.cross_entropy(output, classes)
        return nn.functional.mse_loss(output, ratings)

    def regularization(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor | None:
        """Optional per-batch L2 on the embedding rows the batch used (None if the model has none)."""
        return None

    # ---- prediction ------------------------------------------------------------------------------------------
    def to_rating(self, output: torch.Tensor) -> torch.Tensor:
        """Turn forward's output into ratings: identity for regression, expected rating for classification."""
        if self.head == "classification":
            return output.softmax(dim=-1) @ self.class_values
        return output

    @torch.no_grad()
    def predict(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Predicted ratings (B,), unclipped. Callers put the model in eval mode."""
        return self.to_rating(self(users, items))

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor) -> torch.Tensor:
        """Predicted rating of every item for each user: (B, n_items).

        The default runs one batched forward pass over the (B x n_items) grid; MF-like models override it
        with a single matrix product.
        """
        n_items = self.config.n_items
        grid_users = users.repeat_interleave(n_items)
        grid_items = torch.arange(n_items, device=users.device).repeat(users.shape[0])
        return self.predict(grid_users, grid_items).view(users.shape[0], n_items)

    def item_embeddings(self) -> torch.Tensor:
        """Learned item vectors (n_items, d) used by similar-items."""
        raise NotImplementedError(f"{self.name} has no item embeddings")

    def user_embeddings(self) -> torch.Tensor:
        """Learned user vectors (n_users, d) used by similar-users."""
        raise NotImplementedError(f"{self.name} has no user embeddings")

    def bias_terms(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(global mean, user biases, item biases) for the cold-start fallback, or None if the model has none."""
        return None

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)
