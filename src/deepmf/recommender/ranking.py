"""Top-n lists: every item of a chunk of users scored at once, seen and untrained items masked, torch.topk."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepmf.errors import ConfigError
from deepmf.recommender import base
from deepmf.recommender.base import ColdStart
from deepmf.recommender.predictions import Predictions


class Ranking(Predictions):
    """recommend / recommend_many / recommend_all / rated_vs_predicted over the model's all-items scores."""

    def _matmul_scoring(self) -> bool:
        """Whether the model scores all items with a matrix product (else a forward pass over the grid)."""
        from deepmf.models.base import RatingModel

        return type(self.model).score_all_items is not RatingModel.score_all_items

    def _chunk_users(self) -> int:
        cells = base.MATMUL_CELLS if self._matmul_scoring() else base.GRID_CELLS
        return max(1, cells // max(1, self.n_items))

    def _score_users(self, users: np.ndarray) -> torch.Tensor:
        """Predicted rating of every item per user index (B, n_items), float32; -1 rows use the fallback."""
        device = self.device
        warm = users >= 0
        if warm.all():  # the usual case: no copy into a preallocated table
            return self.model.score_all_items(torch.from_numpy(users).to(device)).float()
        scores = torch.empty((len(users), self.n_items), dtype=torch.float32, device=device)
        if warm.any():
            rows = torch.from_numpy(np.flatnonzero(warm)).to(device)
            scores[rows] = self.model.score_all_items(torch.from_numpy(users[warm]).to(device)).float()
        mean, _, item_bias = self._fallback_terms()
        rows = torch.from_numpy(np.flatnonzero(~warm)).to(device)
        scores[rows] = torch.from_numpy(mean + item_bias).float().to(device)
        return scores

    def _candidates(self, min_ratings: int) -> np.ndarray:
        """Items that may be recommended: those with at least ``min_ratings`` training ratings.

        0 and 1 both mean every item with a training rating: an item the model never trained on is never
        recommended (its vector is initialisation noise).
        """
        if isinstance(min_ratings, bool) or not isinstance(min_ratings, (int, np.integer)) or min_ratings < 0:
            raise ConfigError(f"min_ratings must be a non-negative number of ratings, got {min_ratings}")
        return self._trained_items if min_ratings <= 1 else self._item_counts() >= min_ratings

    def _item_counts(self) -> np.ndarray:
        """Training ratings per item (computed once: it is asked on every request of a service)."""
        if self._item_count_cache is None:
            self._item_count_cache = self.seen.item_counts()
        return self._item_count_cache

    def _top_k(
        self, users: np.ndarray, k: int, exclude_seen: bool, min_ratings: int = 1, chunk: int | None = None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (items (B, k) with -1 padding, scores (B, k), clipped to the scale if ratings) per chunk of user
        indices; ``chunk`` users are scored at a time (default: the scoring budget of ``base``).
        """
        device = self.device
        k = min(k, self.n_items)  # bounded work: longer lists could only be padding
        candidates = self._candidates(min_ratings)
        chunk_size = chunk or self._chunk_users()
        for start in range(0, len(users), chunk_size):
            chunk = users[start : start + chunk_size]
            scores = self._score_users(chunk)
            if exclude_seen:
                positions, items, _ = self.seen.rows(np.maximum(chunk, 0))
                keep = chunk[positions] >= 0
                scores[
                    torch.from_numpy(positions[keep]).to(device),
                    torch.from_numpy(items[keep].astype(np.int64)).to(device),
                ] = -math.inf
            yield self._best(scores, k, candidates)

    def _best(self, scores: torch.Tensor, k: int, candidates: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of each row of ``scores`` (B, n_items; -inf = excluded) among ``candidates``, in place.

        Returns:
            (items (B, k) padded with -1, scores (B, k) padded with NaN, clipped to the rating scale unless the
            model's scores only order items).
        """
        k = min(k, scores.shape[1])  # bounded work: longer lists could only be padding
        untrained = np.flatnonzero(~candidates)
        if len(untrained):
            scores[:, torch.from_numpy(untrained).to(scores.device)] = -math.inf
        width = min(k, int(candidates.sum()))
        top_scores, top_items = torch.topk(scores, width, dim=1)
        top_scores, top_items = top_scores.cpu().numpy(), top_items.cpu().numpy().astype(np.int64)
        empty = ~np.isfinite(top_scores)
        top_items[empty] = -1
        out_items = np.full((len(scores), k), -1, dtype=np.int64)
        out_scores = np.full((len(scores), k), np.nan, dtype=np.float32)
        out_items[:, :width] = top_items
        if not self.scores_only:
            top_scores = np.clip(top_scores, self.scale.minimum, self.scale.maximum)
        out_scores[:, :width] = np.where(empty, np.nan, top_scores)
        return out_items, out_scores

    def recommend(
        self,
        user: Any,
        n: int = 10,
        exclude_seen: bool = True,
        cold_start: ColdStart = "error",
        min_ratings: int = 1,
    ) -> pd.DataFrame:
        """Top-n items for one user: a DataFrame with columns item, title, score (predicted rating, or the
        model's ranking score for implicit feedback).

        With ``cold_start="bias"`` an unknown user gets the items with the highest global mean + item bias
        (implicit feedback: the most popular items), and ``result.attrs["cold_start"]`` is "user".
        ``min_ratings`` leaves out items with fewer training ratings: explicit-rating models put rare, highly
        rated items first (a film five people loved), which
        users often do not want.

        Raises:
            ConfigError: n < 1 or min_ratings < 1.
            UnknownIdError: an unknown user with ``cold_start="error"``.
        """
        items, scores, cold = self._top_list(user, n, exclude_seen, cold_start, min_ratings)
        frame = self._item_frame(items, scores)
        if cold:
            frame.attrs["cold_start"] = "user"
        return frame

    def recommend_records(
        self, user: Any, n: int = 10, exclude_seen: bool = True, min_ratings: int = 1
    ) -> list[dict[str, Any]]:
        """``recommend`` as JSON-ready rows ``{"item", "title", "score"}`` (Python scalars), for a known user.

        The service's per-request path: building and unpacking a DataFrame cost more than the ranking itself
        (~0.3 ms of ~0.5 ms per request on ML-100K).

        Raises:
            ConfigError: n < 1 or min_ratings < 0.
            UnknownIdError: an unknown or untrained user.
        """
        items, scores, _ = self._top_list(user, n, exclude_seen, "error", min_ratings)
        return self._item_records(items, scores)

    def _item_frame(self, items: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
        """Columns item, title, score of item indices and their scores (a ranked list)."""
        return pd.DataFrame({"item": self.item_ids.raw(items), "title": self._titles(items), "score": scores})

    def _item_records(self, items: np.ndarray, scores: np.ndarray) -> list[dict[str, Any]]:
        """``{"item", "title", "score"}`` rows of item indices and their scores, as Python scalars."""
        raw, titles = self.item_ids.raw(items).tolist(), self._titles(items).tolist()
        return [{"item": item, "title": str(title), "score": score}
                for item, title, score in zip(raw, titles, scores.tolist(), strict=True)]

    def _top_list(
        self, user: Any, n: int, exclude_seen: bool, cold_start: ColdStart, min_ratings: int
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """(item indices, scores, whether the user was answered by the cold-start fallback) of one top-n."""
        self._check_n(n)
        index = self._lookup([user], self.user_ids, self._trained_users, cold_start)
        items, scores = next(self._top_k(index, n, exclude_seen, min_ratings))
        valid = items[0] >= 0
        return items[0][valid], scores[0][valid], bool(index[0] < 0)

    def recommend_many(
        self, users: Sequence[Any] | np.ndarray, n: int = 10, exclude_seen: bool = True, min_ratings: int = 1
    ) -> pd.DataFrame:
        """Top-n items for many users, scored in chunks: columns user, rank (1-based), item, title, score.

        ``min_ratings`` as in ``recommend``.

        Raises:
            ConfigError: n < 1 or min_ratings < 1, or ``users`` is not a collection of ids.
            UnknownIdError: an unknown or untrained user.
        """
        self._check_n(n)
        if isinstance(users, (str, bytes)) or not isinstance(users, Iterable):
            raise ConfigError(f"users must be a list or array of user ids, not {type(users).__name__} {users!r}"
                              " (recommend() takes one user)")
        index = self._lookup(users if isinstance(users, np.ndarray) else list(users), self.user_ids,
                             self._trained_users, "error")
        parts = list(self._top_k(index, n, exclude_seen, min_ratings))
        items = np.concatenate([p[0] for p in parts]) if parts else np.zeros((0, 0), dtype=np.int64)
        scores = np.concatenate([p[1] for p in parts]) if parts else np.zeros((0, 0), dtype=np.float32)
        rows, ranks = np.nonzero(items >= 0)
        picked = items[rows, ranks]
        return pd.DataFrame(
            {
                "user": self.user_ids.raw(index[rows]),
                "rank": ranks + 1,
                "item": self.item_ids.raw(picked),
                "title": self._titles(picked),
                "score": scores[rows, ranks],
            }
        )

    def recommend_all(self, n: int = 10, min_ratings: int = 1, exclude_seen: bool = True) -> Iterator[pd.DataFrame]:
        """Top-n for every user with training ratings, one DataFrame per chunk of users (bounded memory).

        Columns user, rank (1-based), item, title, score (predicted rating); users in index order.
        ``min_ratings`` as in ``recommend``.

        Raises:
            ConfigError: n < 1 or min_ratings < 0.
        """
        self._check_n(n)
        self._candidates(min_ratings)  # refuse a bad value before any work
        users = np.flatnonzero(self._trained_users)
        chunk = max(self._chunk_users(), base.ALL_USERS_CELLS // max(1, self.n_items) if self._matmul_scoring() else 1)
        for start in range(0, len(users), chunk):
            block = users[start : start + chunk]
            items, scores = next(self._top_k(block, n, exclude_seen, min_ratings, chunk=len(block)))
            rows, ranks = np.nonzero(items >= 0)
            picked = items[rows, ranks]
            yield pd.DataFrame(
                {
                    "user": self.user_ids.raw(block[rows]),
                    "rank": (ranks + 1).astype(np.int32),
                    "item": self.item_ids.raw(picked),
                    "title": self._titles(picked).astype(str),
                    "score": scores[rows, ranks],
                }
            )

    def rated_vs_predicted(self, user: Any) -> pd.DataFrame:
        """The user's training ratings next to the model's predictions: item, title, rating, prediction.

        Sorted by rating, then prediction, highest first.
        """
        index = self._user_index(user)
        _, items, ratings = self.seen.rows(np.array([index]))
        predicted, _ = self._predict_indices(np.full(len(items), index), items)
        frame = pd.DataFrame(
            {
                "item": self.item_ids.raw(items),
                "title": self._titles(items),
                "rating": ratings,
                "prediction": predicted,
            }
        )
        return frame.sort_values(["rating", "prediction"], ascending=False, kind="stable").reset_index(
            drop=True
        )

