"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): a closed-form item-item model.

With X the binary user x item matrix of training interactions, EASE learns the item-item weights

    B = argmin |X - X B|^2 + reg |B|^2  subject to diag(B) = 0,

whose solution is ``P = (X^T X + reg I)^-1``, ``B_ij = -P_ij / P_jj`` (``B_jj = 0``). A user's scores are their
row of X times B: ``score(u, i) = sum over the user's items j of B_ji``. Counts are not used (X is binary, as in
the paper). Folding a new user in needs nothing but their row: ``fold_in_user`` returns it and
``score_user_vectors`` multiplies it by B.

The solve is dense in the number of items: B and the Gram matrix are m x m for the m items with a training
interaction (items without one have zero rows in X and are left out), so ``EASE.from_data`` refuses, naming the
memory it would need, when three float32 m x m matrices do not fit in the memory available.

The model keeps the training interactions (a CSR of each user's item positions) as buffers, because its
scores are computed from them: the saved model is self-contained like any other.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from deepmf.errors import ConfigError
from deepmf.models.base import RatingModel
from deepmf.models.bilinear import csr_bags
from deepmf.models.factors import fold_in_inputs
from deepmf.models.foldin import VectorFoldIn
from deepmf.models.layers import ModelConfig

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings

# Matrices of m x m float32 alive at once during the solve: the Gram matrix, its Cholesky factor, the inverse.
SOLVE_COPIES = 3


def ease_memory_bytes(n_items: int) -> int:
    """Bytes the EASE solve holds at once for ``n_items`` items (``SOLVE_COPIES`` float32 square matrices)."""
    return SOLVE_COPIES * 4 * n_items * n_items


def available_memory_bytes() -> int | None:
    """Memory the system reports as available now (None where it cannot tell)."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


@dataclass(kw_only=True)
class EASEConfig(ModelConfig):
    """Shapes and regularization of an EASE model.

    Attributes:
        reg: L2 strength ``reg`` on B (added to the Gram matrix's diagonal).
        n_trained: items with at least one training interaction (the side of B; data).
        n_interactions: training (user, item) pairs kept for scoring (data).
    """

    reg: float = 300.0
    n_trained: int = 0
    n_interactions: int = 0

    data_fields = (*ModelConfig.data_fields, "n_trained", "n_interactions")

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.reg, bool) or not isinstance(self.reg, (int, float)) or not self.reg > 0:
            raise ConfigError(f"reg must be a positive number, got {self.reg!r}")

    @classmethod
    def data_values(cls, data: Ratings) -> dict[str, Any]:
        values = super().data_values(data)
        values.update(n_trained=int((data.item_counts() > 0).sum()), n_interactions=len(data))
        return values


class EASE(VectorFoldIn, RatingModel):
    """EASE item-item model; see the module docstring."""

    name: ClassVar[str] = "ease"
    config_class: ClassVar[Any] = EASEConfig
    engines = ("closed",)
    output_kind = "score"
    feedbacks = ("implicit",)
    # Solved once; reg from bench/implicit.py's search on ML-100K validation carved from training.
    default_train: ClassVar[dict[str, Any]] = {"epochs": 1, "patience": 0}

    def __init__(self, config: EASEConfig) -> None:
        super().__init__()
        self.config = config
        m = config.n_trained
        self.register_buffer("item_position", torch.full((config.n_items,), -1, dtype=torch.int64))
        self.register_buffer("weights", torch.zeros(m, m))
        self.register_buffer("user_indptr", torch.zeros(config.n_users + 1, dtype=torch.int64))
        self.register_buffer("user_items", torch.zeros(config.n_interactions, dtype=torch.int64))

    @classmethod
    def from_data(cls, data: Ratings, **options: Any) -> EASE:
        """As ``RatingModel.from_data``, refusing a catalogue whose dense solve does not fit in memory.

        Raises:
            ConfigError: as ``RatingModel.from_data``; or too many items for the memory available.
        """
        cls.check_feedback(data.feedback)
        m = int((data.item_counts() > 0).sum())
        needed, available = ease_memory_bytes(m), available_memory_bytes()
        if available is not None and needed > available:
            raise ConfigError(
                f"ease needs {needed / 2**30:.1f} GiB for its dense {m:,} x {m:,} item-item matrices "
                f"({SOLVE_COPIES} float32 copies), more than the {available / 2**30:.1f} GiB available; "
                "use ials or bpr, or keep fewer items"
            )
        return super().from_data(data, **options)  # type: ignore[return-value]

    # ---- training ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def solve(self, train: Ratings) -> None:
        """Fill B and the interaction buffers from ``train`` (the ratings the model was sized for).

        Raises:
            ConfigError: ``train`` is not the data the model was built for.
        """
        cfg = self.config
        counts = train.item_counts()
        trained = np.flatnonzero(counts > 0)
        if len(trained) != cfg.n_trained or len(train) != cfg.n_interactions or train.n_items != cfg.n_items:
            raise ConfigError("ease: the training data differs from the data the model was built for")
        position = np.full(cfg.n_items, -1, dtype=np.int64)
        position[trained] = np.arange(len(trained))
        order = np.lexsort((train.items, train.users))
        indptr = np.zeros(cfg.n_users + 1, dtype=np.int64)
        np.cumsum(train.user_counts(), out=indptr[1:])
        columns = position[train.items[order]]
        from deepmf.models.cooccurrence import cooccurrence  # numba: imported when a model is solved

        gram = torch.from_numpy(cooccurrence(train.users[order], columns, cfg.n_users, cfg.n_trained))
        gram = gram.to(self.weights.device)
        gram.diagonal().add_(cfg.reg)
        inverse = torch.cholesky_inverse(torch.linalg.cholesky(gram))
        del gram
        inverse /= -inverse.diagonal().clone()  # column j divided by -P_jj
        inverse.diagonal().zero_()
        self.weights.copy_(inverse)
        self.item_position.copy_(torch.from_numpy(position))
        self.user_indptr.copy_(torch.from_numpy(indptr))
        self.user_items.copy_(torch.from_numpy(columns))

    # ---- scoring -------------------------------------------------------------------------------------------
    def _user_rows(self, users: torch.Tensor) -> torch.Tensor:
        """Dense binary rows (B, n_trained) of the users' training interactions."""
        positions, _ = csr_bags(self.user_indptr, users)
        lengths = self.user_indptr[users + 1] - self.user_indptr[users]
        rows = torch.zeros(len(users), self.config.n_trained, device=self.weights.device)
        owner = torch.repeat_interleave(torch.arange(len(users), device=rows.device), lengths)
        rows[owner, self.user_items[positions]] = 1.0
        return rows

    @torch.no_grad()
    def score_user_vectors(self, vectors: torch.Tensor) -> torch.Tensor:
        """Every item's score (B, n_items) for interaction rows (B, n_trained), e.g. from ``fold_in_user``;
        items without training interactions score 0."""
        compact = vectors.to(self.weights) @ self.weights
        scores = torch.zeros(len(vectors), self.config.n_items, device=compact.device)
        trained = self.item_position >= 0
        scores[:, trained] = compact[:, self.item_position[trained]]
        return scores

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor) -> torch.Tensor:
        return self.score_user_vectors(self._user_rows(users))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Pairwise scores: the sum of B[j, i] over each user's training items j."""
        positions, _ = csr_bags(self.user_indptr, users)
        lengths = self.user_indptr[users + 1] - self.user_indptr[users]
        pair = torch.repeat_interleave(torch.arange(len(users), device=users.device), lengths)
        column = self.item_position[items][pair]
        values = self.weights[self.user_items[positions], column.clamp(min=0)] * (column >= 0)
        return torch.zeros(len(users), device=self.weights.device).index_add_(0, pair, values)

    @torch.no_grad()
    def fold_in_user(self, items: torch.Tensor | Any, weights: torch.Tensor | Any | None = None) -> torch.Tensor:
        """The binary interaction row (n_trained,) of a user who interacted with ``items``; weights only
        select (EASE uses no counts); items without training interactions have no column and drop out.

        Raises:
            ConfigError: bad indices or weights.
        """
        items, _ = fold_in_inputs(self, items, weights)
        row = torch.zeros(self.config.n_trained, device=self.weights.device)
        position = self.item_position[items]
        row[position[position >= 0]] = 1.0
        return row

    def item_embeddings(self) -> torch.Tensor:
        """Each item's row of B (what it predicts), scattered to the full item index; zero if untrained."""
        vectors = torch.zeros(self.config.n_items, self.config.n_trained, device=self.weights.device)
        trained = self.item_position >= 0
        vectors[trained] = self.weights[self.item_position[trained]]
        return vectors
