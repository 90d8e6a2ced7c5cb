"""SeenRatings: a model's training ratings grouped by user, for skipping seen items and cold-id checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepmf.data.ratings import Ratings


@dataclass(frozen=True)
class SeenRatings:
    """Training ratings grouped by user (CSR): ``items[indptr[u]:indptr[u + 1]]`` are user u's rated items.

    Attributes:
        indptr: int64 offsets, length n_users + 1.
        items: int32 item indices, grouped by user.
        ratings: float32 ratings aligned with ``items``.
        n_items: size of the item map.
    """

    indptr: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    n_items: int

    @classmethod
    def from_ratings(cls, ratings: Ratings) -> SeenRatings:
        """Group a Ratings object's rows by user index."""
        order = np.argsort(ratings.users, kind="stable")
        indptr = np.zeros(ratings.n_users + 1, dtype=np.int64)
        np.cumsum(ratings.user_counts(), out=indptr[1:])
        return cls(
            indptr,
            ratings.items[order].astype(np.int32),
            ratings.ratings[order].astype(np.float32),
            ratings.n_items,
        )

    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    def user_counts(self) -> np.ndarray:
        return np.diff(self.indptr)

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.items, minlength=self.n_items)

    def rows(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Flattened ratings of several users: (position in ``users``, item, rating) per rating."""
        users = np.asarray(users, dtype=np.int64)
        starts, counts = self.indptr[users], np.diff(self.indptr)[users]
        # Gather the users' CSR slices without a Python loop: each slice is start + 0..count-1.
        offsets = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        positions = np.repeat(np.arange(len(users)), counts)
        return positions, self.items[offsets], self.ratings[offsets]

    def global_mean(self) -> float:
        return float(self.ratings.mean(dtype=np.float64)) if len(self.ratings) else float("nan")

    def user_of_each_rating(self) -> np.ndarray:
        return np.repeat(np.arange(self.n_users), self.user_counts())

