"""Predicted ratings of (user, item) pairs in raw ids, with the cold-start fallback and optional times."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepmf.errors import ConfigError
from deepmf.recommender import base
from deepmf.recommender.base import ColdStart
from deepmf.recommender.lookup import IdLookup
from deepmf.recommender.results import Prediction

# Shrinks the empirical biases of users/items with few ratings toward zero (models without bias terms only).
_BIAS_DAMPING = 10.0
_COLD_NAMES = np.array(["", "user", "item", "both"], dtype=object)


class Predictions(IdLookup):
    """predict / predict_many / predict_frame, and the fallback terms cold ids are answered with."""

    _fallback: tuple[float, np.ndarray, np.ndarray] | None

    def _fallback_terms(self) -> tuple[float, np.ndarray, np.ndarray]:
        """(global mean, user biases, item biases) in rating units for cold-start answers.

        Taken from the model when it has bias terms, else estimated from the training ratings as damped mean
        offsets (global mean first, then item offsets, then user offsets of the residual). Models of implicit
        feedback answer with popularity: 0 + 0 + the share of training users who interacted with the item.
        """
        if self._fallback is None:
            terms = self.model.bias_terms()
            if self.scores_only:
                share = self.seen.item_counts() / max(int(self._trained_users.sum()), 1)
                self._fallback = (0.0, np.zeros(self.n_users, dtype=np.float32), share.astype(np.float32))
            elif terms is not None:
                mean, user_bias, item_bias = (t.detach().float().cpu().reshape(-1).numpy() for t in terms)
                self._fallback = (float(mean[0]), user_bias, item_bias)
            else:
                mean = self.seen.global_mean()
                counts_i = self.seen.item_counts() + _BIAS_DAMPING
                item_bias = np.bincount(self.seen.items, self.seen.ratings - mean, self.n_items) / counts_i
                users = self.seen.user_of_each_rating()
                residual = self.seen.ratings - mean - item_bias[self.seen.items]
                user_bias = np.bincount(users, residual, self.n_users) / (
                    self.seen.user_counts() + _BIAS_DAMPING
                )
                self._fallback = (mean, user_bias.astype(np.float32), item_bias.astype(np.float32))
        return self._fallback

    def _predict_indices(
        self, users: np.ndarray, items: np.ndarray, timestamps: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predictions for index pairs (-1 = cold), clipped to the scale unless they are scores, and a cold code
        per pair (0, 1 user, 2 item, 3).

        With ``timestamps`` (unix seconds, aligned with the pairs) a model that uses time scores each warm pair
        at its own time (``predict_at``); other models ignore them.
        """
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        cold_code = (users < 0).astype(np.int8) + 2 * (items < 0).astype(np.int8)
        out = np.empty(len(users), dtype=np.float32)
        warm = np.flatnonzero(cold_code == 0)
        device = self.device
        times = self._model_times(timestamps, len(users))
        for start in range(0, len(warm), base.MATMUL_CELLS):
            rows = warm[start : start + base.MATMUL_CELLS]
            u = torch.from_numpy(users[rows]).to(device)
            i = torch.from_numpy(items[rows]).to(device)
            t = None if times is None else torch.from_numpy(times[rows]).to(device)
            out[rows] = self.model.predict_at(u, i, t).float().cpu().numpy()
        cold = np.flatnonzero(cold_code)
        if len(cold):
            mean, user_bias, item_bias = self._fallback_terms()
            u, i = users[cold], items[cold]
            out[cold] = (
                mean
                + np.where(u >= 0, user_bias[np.maximum(u, 0)], 0.0)
                + np.where(i >= 0, item_bias[np.maximum(i, 0)], 0.0)
            )
        if self.scores_only:
            return out, cold_code
        return np.clip(out, self.scale.minimum, self.scale.maximum), cold_code

    def _model_times(self, timestamps: Any, n: int) -> np.ndarray | None:
        """Checked ``timestamps`` as int64 unix seconds if the model uses time, else None.

        Raises:
            ConfigError: the timestamps are not integers or not one per pair.
        """
        if timestamps is None:
            return None
        try:
            times = np.asarray(timestamps, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            raise ConfigError("timestamps must be integer unix seconds") from None
        if times.shape != (n,):
            raise ConfigError(f"got {times.size} timestamps for {n} pairs")
        return times if self.model.uses_time else None

    def predict(self, user: Any, item: Any, cold_start: ColdStart = "error") -> Prediction:
        """Predicted rating of one (user, item) pair in raw ids, clipped to the rating scale (for an implicit-
        feedback model: its score, unclipped).

        Raises:
            UnknownIdError: a cold id with ``cold_start="error"``.
        """
        values, cold = self._predict_raw([user], [item], cold_start)
        name = _COLD_NAMES[cold[0]] or None
        return Prediction(self.user_ids.coerce(user), self.item_ids.coerce(item), float(values[0]), name)

    def predict_many(
        self,
        users: Sequence[Any] | np.ndarray,
        items: Sequence[Any] | np.ndarray,
        cold_start: ColdStart = "error",
        timestamps: Sequence[int] | np.ndarray | None = None,
    ) -> np.ndarray:
        """Predicted ratings (float32) of aligned arrays of raw user and item ids.

        ``timestamps`` (unix seconds, aligned with the pairs) are the times the ratings are made; a model that
        uses time (``model.uses_time``, e.g. Bayesian MF with its date feature) predicts at them, others
        ignore them. Without them such a model predicts at each user's usual days.
        """
        return self._predict_raw(users, items, cold_start, timestamps)[0]

    def predict_frame(
        self,
        frame: pd.DataFrame,
        user_col: str = "user",
        item_col: str = "item",
        cold_start: ColdStart = "error",
        timestamps: Sequence[int] | np.ndarray | None = None,
    ) -> pd.DataFrame:
        """A copy of ``frame`` with a ``prediction`` column (and ``cold_start``: "", user, item, both).

        ``timestamps`` as in ``predict_many``: the rows' rating times, used by models that use time.
        """
        for col in (user_col, item_col):
            if col not in frame.columns:
                raise ConfigError(
                    f"column {col!r} not in the frame (columns: {', '.join(map(str, frame.columns))})"
                )
        values, cold = self._predict_raw(
            frame[user_col].to_numpy(), frame[item_col].to_numpy(), cold_start, timestamps
        )
        out = frame.copy()
        out["prediction"] = values
        if cold_start == "bias":
            out["cold_start"] = _COLD_NAMES[cold]
        return out

    def _predict_raw(
        self,
        users: Sequence[Any] | np.ndarray,
        items: Sequence[Any] | np.ndarray,
        cold_start: ColdStart,
        timestamps: Sequence[int] | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        if len(users) != len(items):
            raise ConfigError(f"got {len(users)} users but {len(items)} items")
        u = self._lookup(users, self.user_ids, self._trained_users, cold_start)
        i = self._lookup(items, self.item_ids, self._trained_items, cold_start)
        return self._predict_indices(u, i, timestamps)

