"""Scoring shared by models whose prediction is offsets plus a dot product: Bayesian MF, SVD++, AutoRec.

Each of them predicts ``global + user_offset[u] + item_offset[i] + <user_vector(u), item_vector(i)>`` once
trained, however differently the vectors are made (posterior samples side by side, a user vector plus
implicit feedback, an encoder over the item's ratings). Subclasses say how to get the vectors and offsets;
this base turns that into ``forward``, the one-matrix-product ``score_all_items``, the embeddings and the bias
terms.
"""

from __future__ import annotations

import torch

from deepmf.models.base import RatingModel


def csr_bags(ptr: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions and bag offsets that select CSR ``rows`` (row r spans ``ptr[r]:ptr[r+1]``) for a bag.

    Returns:
        (positions into the CSR's column/value arrays, row after row; start of each row's bag in positions).
    """
    starts = ptr[rows]
    lengths = ptr[rows + 1] - starts
    offsets = torch.cumsum(lengths, 0) - lengths
    shift = torch.repeat_interleave(starts - offsets, lengths)
    return torch.arange(len(shift), device=ptr.device) + shift, offsets


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
