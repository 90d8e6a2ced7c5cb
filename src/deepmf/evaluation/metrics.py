"""Rating-prediction metrics: RMSE, MAE and accuracy. Pure functions of two equally long arrays.

They accept numpy arrays, torch tensors (any device) or sequences, compute in float64 and return Python
floats, so a metric never depends on the batch size or the dtype the model ran in.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from deepmf.errors import DataError

ArrayLike = np.ndarray | torch.Tensor | Sequence[float]


def _pair(predicted: ArrayLike, actual: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    pred = _as_float64(predicted)
    true = _as_float64(actual)
    if pred.shape != true.shape:
        raise DataError(f"predictions and ratings differ in length: {pred.shape[0]} vs {true.shape[0]}")
    if pred.size == 0:
        raise DataError("cannot compute a metric on no ratings")
    return pred, true


def _as_float64(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        values = values.detach().to("cpu", torch.float64).numpy()
    return np.asarray(values, dtype=np.float64).reshape(-1)


def rmse(predicted: ArrayLike, actual: ArrayLike) -> float:
    """Root mean squared error.

    Args:
        predicted: predicted ratings.
        actual: true ratings, same length.

    Returns:
        ``sqrt(mean((predicted - actual) ** 2))``.

    Raises:
        DataError: the lengths differ or both are empty.
    """
    pred, true = _pair(predicted, actual)
    return float(np.sqrt(np.mean((pred - true) ** 2)))


def mae(predicted: ArrayLike, actual: ArrayLike) -> float:
    """Mean absolute error ``mean(|predicted - actual|)``.

    Raises:
        DataError: the lengths differ or both are empty.
    """
    pred, true = _pair(predicted, actual)
    return float(np.mean(np.abs(pred - true)))


def accuracy(predicted: ArrayLike, actual: ArrayLike, step: float | None = None) -> float:
    """Share of predictions equal to the true rating.

    Args:
        predicted: predicted ratings (e.g. the most likely class of a classification head).
        actual: true ratings.
        step: when given, both sides are first rounded to the nearest multiple of ``step`` (the rating
            scale's step), so regression outputs can be scored as classes and float noise never counts.

    Raises:
        DataError: the lengths differ, both are empty, or ``step`` is not positive.
    """
    pred, true = _pair(predicted, actual)
    if step is not None:
        if not step > 0:
            raise DataError(f"accuracy step must be positive, got {step}")
        pred = np.rint(pred / step)
        true = np.rint(true / step)
    return float(np.mean(pred == true))
