"""Scoring shared by models whose prediction is offsets plus a dot product: Bayesian MF, SVD++, AutoRec.

Each of them predicts ``global + user_offset[u] + item_offset[i] + <user_vector(u), item_vector(i)>`` once
trained, however differently the vectors are made (posterior samples side by side, a user vector plus
implicit feedback, an encoder over the item's ratings). Subclasses say how to get the vectors and offsets;
this base turns that into ``forward``, the one-matrix-product ``score_all_items``, the embeddings and the bias
terms. Fold-in (``deepmf.models.foldin``) of such a model is a ridge regression of the new user's vector and
offset against the fixed item vectors, answered by ``FoldedUser``.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from deepmf.models.base import RatingModel
from deepmf.models.foldin import FoldInContext, ridge
from deepmf.models.layers import ModelConfig


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
        scores = torch.addmm(item_offset.unsqueeze(0), self.user_vectors(users), self.item_vectors().T)
        return scores.add_((user_offset[users] + global_offset).unsqueeze(1))

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

    # ---- fold-in -------------------------------------------------------------------------------------------
    def fold_in_penalties(self, n_ratings: int, context: FoldInContext) -> tuple[float, float]:
        """L2 strengths (vector, offset) on a new user's parameters, as the model was trained: by default
        the per-rating L2 of biased MF and SVD++ (``context.user_penalty``) on both."""
        penalty = context.user_penalty(n_ratings)
        return penalty, penalty

    def fold_in_fixed_vector(self, items: torch.Tensor) -> torch.Tensor | None:
        """The part of a new user's vector fixed by which ``items`` he rated (SVD++'s implicit sum), or None."""
        return None

    @torch.no_grad()
    def fold_in(self, items: torch.Tensor, ratings: torch.Tensor, context: FoldInContext) -> RatingModel:
        """Closed form: ridge regression of the user's vector and offset on the fixed item vectors."""
        global_offset, _, item_offset = self.offsets()
        vectors = context.cached("item_vectors", self.item_vectors)  # I-AutoRec encodes every item: once
        vector_penalty, offset_penalty = self.fold_in_penalties(len(items), context)
        return fit_bilinear_user(self, vectors, item_offset, global_offset, items, ratings, vector_penalty,
                                 offset_penalty, self.fold_in_fixed_vector(items))


def fit_bilinear_user(model: RatingModel, vectors: torch.Tensor, item_offset: torch.Tensor,
                      global_offset: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor,
                      vector_penalty: float, offset_penalty: float | None,
                      fixed: torch.Tensor | None = None) -> FoldedUser:
    """The new user's ``FoldedUser``: vector (and offset unless ``offset_penalty`` is None) by ridge.

    Minimises ``sum (r - global - item_offset - offset - <fixed + x, v_i>)^2 + vector_penalty |x|^2 +
    offset_penalty offset^2`` over the user's rated ``items``.
    """
    rated = vectors[items]
    targets = ratings - global_offset - item_offset[items]
    if fixed is not None:
        targets = targets - rated @ fixed
    columns, penalties = [rated], [torch.full((rated.shape[1],), vector_penalty)]
    if offset_penalty is not None:
        columns.append(torch.ones_like(rated[:, :1]))
        penalties.append(torch.tensor([offset_penalty]))
    solution = ridge(torch.cat(columns, dim=1), targets, torch.cat(penalties).to(rated.device))
    vector = solution[: rated.shape[1]]
    offset = solution[rated.shape[1]] if offset_penalty is not None else torch.zeros((), device=rated.device)
    return FoldedUser(model, vectors, item_offset, global_offset,
                      vector if fixed is None else fixed + vector, offset)


class FoldedUser(BilinearModel):
    """A one-user model (user 0): a new user's vector and offset against a trained model's item side.

    The item vectors and offsets are the trained model's tensors, shared; only the user's own numbers are new.
    """

    name: ClassVar[str] = "folded"

    def __init__(self, source: RatingModel, item_vectors: torch.Tensor, item_offset: torch.Tensor,
                 global_offset: torch.Tensor, user_vector: torch.Tensor, user_offset: torch.Tensor) -> None:
        super().__init__()
        cfg = source.config
        self.config = ModelConfig(n_users=1, n_items=cfg.n_items, global_mean=cfg.global_mean,
                                  rating_min=cfg.rating_min, rating_max=cfg.rating_max,
                                  rating_step=cfg.rating_step)
        self.register_buffer("shared_item_vectors", item_vectors.detach())
        self.register_buffer("shared_item_offset", item_offset.detach())
        self.register_buffer("global_offset", global_offset.detach().reshape(()))
        self.register_buffer("user_vector", user_vector.detach().reshape(1, -1).to(item_vectors.dtype))
        self.register_buffer("user_offset", user_offset.detach().reshape(1).to(item_vectors.dtype))

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_vector[users]

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        return self.shared_item_vectors if items is None else self.shared_item_vectors[items]

    def offsets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.global_offset, self.user_offset, self.shared_item_offset
