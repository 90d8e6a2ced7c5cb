"""What the Recommender answers with: a single Prediction, and an Evaluation on held-out ratings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Prediction:
    """One predicted rating; ``cold_start`` names the cold side ("user", "item", "both") or is None."""

    user: Any
    item: Any
    prediction: float
    cold_start: str | None = None

    def __float__(self) -> float:
        return self.prediction

    def to_dict(self) -> dict[str, Any]:
        out = {"user": self.user, "item": self.item, "prediction": self.prediction}
        if self.cold_start is not None:
            out["cold_start"] = self.cold_start
        return out


@dataclass
class Evaluation:
    """Metrics of a model on held-out ratings, with the predictions they came from (for plots).

    Attributes:
        metrics: rmse, mae (accuracy for a classification head), n_ratings, n_cold, k, relevant_threshold,
            precision, recall, ndcg, hit_rate, coverage, n_ranked_users.
        actual: the held-out ratings.
        predicted: the clipped predictions, aligned with ``actual``.
    """

    metrics: dict[str, Any]
    actual: np.ndarray
    predicted: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return dict(self.metrics)
