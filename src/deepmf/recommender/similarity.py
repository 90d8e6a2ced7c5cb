"""Nearest items and users by the cosine or dot product of the model's learned vectors."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepmf.errors import ConfigError
from deepmf.recommender.base import Metric
from deepmf.recommender.ranking import Ranking


class Similarity(Ranking):
    """item_vectors, user_vectors, similar_items and similar_users."""

    def item_vectors(self) -> np.ndarray | None:
        """The model's learned item vectors (n_items, d) as float32 numpy, row i = item index i (raw id
        ``item_ids.raw(i)``), or None if it has none."""
        return self._vectors("item")

    def user_vectors(self) -> np.ndarray | None:
        """The model's learned user vectors (n_users, d) as float32 numpy, row u = user index u (raw id
        ``user_ids.raw(u)``), or None if it has none. ``deepmf export`` writes both with raw ids and biases."""
        return self._vectors("user")

    def _vectors(self, side: str) -> np.ndarray | None:
        try:
            return self._embeddings(side).cpu().numpy()
        except ConfigError:
            return None

    def _embeddings(self, side: str) -> torch.Tensor:
        try:
            vectors = self.model.item_embeddings() if side == "item" else self.model.user_embeddings()
        except NotImplementedError:
            raise ConfigError(f"model {self.model_name!r} has no {side} embeddings to compare") from None
        return vectors.detach().float()

    def _compared_vectors(self, side: str, metric: Metric) -> torch.Tensor:
        """The side's vectors, unit-normalised for cosine; kept once computed (the model does not change, and a
        service asks on every request: normalising 27K item vectors each time cost more than the product)."""
        key = f"{side}:{metric}"
        if key not in self._vector_cache:
            vectors = self._embeddings(side)
            self._vector_cache[key] = torch.nn.functional.normalize(vectors, dim=1) if metric == "cosine" else vectors
        return self._vector_cache[key]

    def _similar(
        self, side: str, raw_id: Any, n: int, metric: Metric, min_ratings: int = 1
    ) -> tuple[int, np.ndarray, np.ndarray]:
        self._check_n(n)
        if metric not in ("cosine", "dot"):
            raise ConfigError(f"metric must be cosine or dot, got {metric!r}")
        id_map, trained = (
            (self.item_ids, self._trained_items) if side == "item" else (self.user_ids, self._trained_users)
        )
        index = int(self._lookup([raw_id], id_map, trained, "error")[0])
        allowed = self._candidates(min_ratings) if side == "item" else trained
        vectors = self._compared_vectors(side, metric)
        scores = vectors @ vectors[index]
        candidates = torch.from_numpy(allowed).to(scores.device).clone()
        candidates[index] = False
        scores = scores.masked_fill(~candidates, -math.inf)
        width = min(n, int(candidates.sum()))
        top_scores, top = torch.topk(scores, width)
        return index, top.cpu().numpy(), top_scores.cpu().numpy()

    def similar_items(
        self, item: Any, n: int = 10, metric: Metric = "cosine", min_ratings: int = 1
    ) -> pd.DataFrame:
        """Items whose learned vectors are closest to ``item``'s (itself excluded): item, title, score.

        ``min_ratings`` leaves out items with fewer training ratings (their vectors are mostly prior noise).
        """
        _, items, scores = self._similar("item", item, n, metric, min_ratings)
        return self._item_frame(items, scores)

    def similar_item_records(
        self, item: Any, n: int = 10, metric: Metric = "cosine", min_ratings: int = 1
    ) -> list[dict[str, Any]]:
        """``similar_items`` as JSON-ready rows ``{"item", "title", "score"}`` (the service's per-request path,
        without a DataFrame)."""
        _, items, scores = self._similar("item", item, n, metric, min_ratings)
        return self._item_records(items, scores)

    def similar_users(self, user: Any, n: int = 10, metric: Metric = "cosine") -> pd.DataFrame:
        """Users whose learned vectors are closest to ``user``'s (itself excluded): user, score."""
        _, users, scores = self._similar("user", user, n, metric)
        return pd.DataFrame({"user": self.user_ids.raw(users), "score": scores})

