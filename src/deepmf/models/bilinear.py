"""Scoring shared by models whose prediction is offsets plus a dot product: Bayesian MF, SVD++, AutoRec.

Each of them predicts ``global + user_offset[u] + item_offset[i] + <user_vector(u), item_vector(i)>`` once
trained, however differently the vectors are made (posterior samples side by side, a user vector plus
implicit feedback, an encoder over the item's ratings). Subclasses say how to get the vectors and offsets;
this base turns that into ``forward``, the one-matrix-product ``score_all_items``, the embeddings and the bias
terms.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from deepmf.models.base import RatingModel


class BilinearModel(RatingModel):
    """A regression RatingModel whose prediction is ``global + b_u + b_i + <user vector, item vector>``."""

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """Vectors of the given user indices: (B, d)."""
        raise NotImplementedError

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:  # pragma: no cover - abstract
        """Vectors of the given item indices (B, d), or of every item (n_items, d) when ``items`` is None."""
        raise NotImplementedError

    def offsets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:  # pragma: no cover - abstract
        """(global offset as a 0-d tensor, user offsets (n_users,), item offsets (n_items,))."""
        raise NotImplementedError

    def cached(self, name: str, compute: Callable[[], torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        """``compute()``, reused in eval mode until one of ``inputs`` changes.

        Training, ``load_state_dict`` and in-place edits all bump a tensor's version counter, so the version
        and storage of each input identify the cached value; with gradients on it is always recomputed.
        """
        if self.training or torch.is_grad_enabled():
            return compute()
        key = tuple((t._version, t.data_ptr()) for t in inputs)
        store: dict[str, tuple[tuple[tuple[int, int], ...], torch.Tensor]]
        store = self.__dict__.setdefault("_cache", {})
        if name not in store or store[name][0] != key:
            store[name] = (key, compute())
        return store[name][1]

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        global_offset, user_offset, item_offset = self.offsets()
        dot = (self.user_vectors(users) * self.item_vectors(items)).sum(dim=-1)
        return global_offset + user_offset[users] + item_offset[items] + dot

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor) -> torch.Tensor:
        """Every item's predicted rating for each user, as one matrix product: (B, n_items)."""
        global_offset, user_offset, item_offset = self.offsets()
        scores = self.user_vectors(users) @ self.item_vectors().T
        return scores.add_(item_offset).add_(user_offset[users].unsqueeze(1)).add_(global_offset)

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        return self.item_vectors()

    @torch.no_grad()
    def user_embeddings(self) -> torch.Tensor:
        return self.user_vectors(torch.arange(self.config.n_users, device=self.offsets()[1].device))

    @torch.no_grad()
    def bias_terms(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        global_offset, user_offset, item_offset = self.offsets()
        return global_offset, user_offset, item_offset
