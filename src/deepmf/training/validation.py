"""What the Trainer measures on validation data after each epoch.

Rating models: RMSE of the validation ratings, predictions clipped to the training scale (``evaluate_rmse``).
Implicit-feedback models (``output_kind == "score"``): NDCG@``VALID_K`` of a full ranking of the items each
validation user has not interacted with in training (``deepmf.evaluation.topk.HeldOutRanking``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings, RatingTensors
    from deepmf.models.base import RatingModel

EVAL_BATCH = 1 << 16
# List length of the validation NDCG of implicit-feedback models.
VALID_K = 10


def evaluate_rmse(model: RatingModel, data: RatingTensors, low: float, high: float,
                  batch_size: int = EVAL_BATCH) -> float:
    """RMSE of ``model`` on ``data`` with predictions clipped to ``[low, high]``; batched, one host sync.

    When ``data`` carries timestamps each rating is predicted at its time (``predict_at``), as
    ``Recommender.evaluate`` scores held-out ratings for models that use time.
    """
    was_training = model.training
    model.eval()
    squared_error = torch.zeros((), dtype=torch.float64, device=data.ratings.device)
    for start in range(0, len(data), batch_size):
        end = start + batch_size
        times = None if data.timestamps is None else data.timestamps[start:end]
        predicted = model.predict_at(data.users[start:end], data.items[start:end], times).clamp(low, high)
        squared_error += (predicted - data.ratings[start:end]).pow(2).sum()
    model.train(was_training)
    return math.sqrt(float(squared_error) / max(len(data), 1))


def validation_for(model: RatingModel, train: Ratings, valid: Ratings,
                   device: torch.device) -> Callable[[], dict[str, float]]:
    """A function giving the epoch's validation numbers: ``val_rmse``, or for scores ``val_ndcg``."""
    if model.output_kind == "score":
        from deepmf.evaluation.topk import HeldOutRanking

        ranking = HeldOutRanking(train, valid, VALID_K)
        return lambda: {"val_ndcg": ranking(model)["ndcg"]}
    tensors = valid.to(device, timestamps=model.uses_time)
    scale = train.scale
    return lambda: {"val_rmse": evaluate_rmse(model, tensors, scale.minimum, scale.maximum)}
