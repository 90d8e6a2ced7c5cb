"""Recommender: a trained model with its id maps, titles and training ratings, answering in raw ids.

This is the only place raw ids meet indices at prediction time. Every question is answered in batches: all
items of a user are scored at once (one matrix product for MF, batched forward passes for deep models), many
users are scored in chunks so the full user x item table never exists, and top-k uses ``torch.topk``.

Ids that are not in the model's maps, and ids that are in the maps but had no training rating (the model
never learned them), are *cold*. By default a cold id raises ``UnknownIdError``; with ``cold_start="bias"``
the answer falls back to the global mean plus the known side's bias and says so. Recommendations and similar
items are drawn only from items that had training ratings, for the same reason: an untrained item's vector is
noise.

Time: a model that uses the day of a rating (``model.uses_time``) is scored at the ratings' timestamps by
``evaluate`` (when the held-out ratings have them) and by ``predict_many`` / ``predict_frame`` when given
``timestamps``. Ranking (``recommend``, ``recommend_many``, the ranking metrics) is time-free: a list of items
is for no particular day, and such a model ranks with each user's usual days folded in.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch

from deepmf import io
from deepmf.data.idmap import IdMap, UserItemMaps
from deepmf.data.ratings import ItemTable, Ratings, RatingScale
from deepmf.errors import ConfigError, DeepMFError, ModelFormatError, ResourceError, UnknownIdError
from deepmf.evaluation.ranking import ranking_metrics, relevant_csr

if TYPE_CHECKING:
    from deepmf.models.base import RatingModel
    from deepmf.training.config import TrainConfig
    from deepmf.training.fit import TrainedModel

ColdStart = Literal["error", "bias"]
Metric = Literal["cosine", "dot"]
COLD_START_MODES = ("error", "bias")

# Scoring budget in (user, item) cells per chunk: a matrix product handles 4M cells (16 MB of scores)
# easily; a deep model's forward pass over the grid holds hidden activations per cell, so it gets a
# smaller chunk.
_MATMUL_CELLS = 1 << 22
_GRID_CELLS = 1 << 17
# Shrinks the empirical biases of users/items with few ratings toward zero (models without bias terms only).
_BIAS_DAMPING = 10.0
# Relevance threshold for ranking metrics on the usual 1..5 scale; scaled for other scales (see evaluate).
DEFAULT_RELEVANT = 4.0


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


_COLD_NAMES = np.array(["", "user", "item", "both"], dtype=object)


class Recommender(UserItemMaps):
    """A trained rating model that answers in raw ids and titles.

    Args:
        model: the trained RatingModel (put in eval mode here).
        model_name: its registry name.
        user_ids: id map of the model's user rows.
        item_ids: id map of the model's item rows.
        scale: rating scale; predictions are clipped to it.
        item_table: titles and genres, or None.
        seen: the training ratings (CSR), for excluding seen items and detecting untrained ids.
        train_config: how the model was trained (kept in the saved folder).
        history: per-epoch records (dicts) of training.
        model_options: the options the model was created with.
        summary: training summary (epochs run, seconds, engine, ...).
        evaluation: test-set evaluation kept with the model (plots use it).
    """

    def __init__(
        self,
        model: RatingModel,
        model_name: str,
        user_ids: IdMap,
        item_ids: IdMap,
        scale: RatingScale,
        item_table: ItemTable | None,
        seen: SeenRatings,
        train_config: TrainConfig | None = None,
        history: list[dict[str, Any]] | None = None,
        *,
        model_options: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
        evaluation: Evaluation | None = None,
    ) -> None:
        if seen.n_users != len(user_ids) or seen.n_items != len(item_ids):
            raise ConfigError("training ratings and id maps disagree on the number of users or items")
        self.model = model.eval()
        self.model_name = model_name
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.scale = scale
        self.item_table = item_table
        self.seen = seen
        self.train_config = train_config
        self.history = history or []
        self.model_options = model_options or {}
        self.summary = summary or {}
        self.evaluation = evaluation
        self._trained_users = seen.user_counts() > 0
        self._trained_items = seen.item_counts() > 0
        self._fallback: tuple[float, np.ndarray, np.ndarray] | None = None

    # ---- construction --------------------------------------------------------------------------------------
    @classmethod
    def from_trained(cls, trained: TrainedModel, data: Ratings, train: Ratings) -> Recommender:
        """Wrap the output of ``deepmf.training.fit.train_model``.

        Args:
            trained: the trained model and its training record.
            data: the full data set (id maps, scale, titles).
            train: the ratings the model was trained on (they are "seen").
        """
        result = trained.result.to_dict()
        history = result.pop("history", [])
        return cls(
            trained.model,
            trained.model_name,
            data.user_ids,
            data.item_ids,
            data.scale,
            data.item_table,
            SeenRatings.from_ratings(train),
            trained.train_config,
            history,
            model_options=dict(trained.model_options),
            summary=result,
        )

    @property
    def device(self) -> torch.device:
        tensor = next(itertools.chain(self.model.parameters(), self.model.buffers()), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    def title(self, item_index: int) -> str:
        """Title of an item index ("" when the data had no titles)."""
        return "" if self.item_table is None else str(self.item_table.titles[item_index])

    def _titles(self, item_indices: np.ndarray) -> np.ndarray:
        if self.item_table is None:
            return np.full(len(item_indices), "", dtype=object)
        return np.asarray(self.item_table.titles, dtype=object)[item_indices]

    def find_item(self, query: object) -> Any:
        """Raw id of an item given its id or its title (exact, case-insensitive; else a unique substring).

        Raises:
            UnknownIdError: no item has that id or title, or the title is ambiguous.
        """
        if query in self.item_ids:
            return self.item_ids.raw(self.item_ids.index(query))
        if self.item_table is None:
            raise UnknownIdError("item", query)
        needle = str(query).strip().casefold()
        titles = pd.Series(self.item_table.titles, dtype=object).astype(str).str.casefold()
        matches = np.flatnonzero(titles.to_numpy() == needle)
        if len(matches) == 0:
            matches = np.flatnonzero(titles.str.contains(needle, regex=False).to_numpy())
        if len(matches) == 1:
            return self.item_ids.raw(int(matches[0]))
        if len(matches) == 0:
            raise UnknownIdError("item", query, f"no item has id or title {query!r}")
        examples = "; ".join(self.title(int(i)) for i in matches[:3])
        raise UnknownIdError(
            "item",
            query,
            f"{len(matches)} titles match {query!r} (e.g. {examples}); give the item id or the full title",
        )

    # ---- id lookup -----------------------------------------------------------------------------------------
    def _lookup(
        self, raw_ids: Sequence[Any] | np.ndarray, id_map: IdMap, trained: np.ndarray, cold_start: ColdStart
    ) -> np.ndarray:
        """Indices of raw ids; cold ids (unknown, or never trained) become -1, or raise in "error" mode."""
        if cold_start not in COLD_START_MODES:
            raise ConfigError(f"cold_start must be one of {', '.join(COLD_START_MODES)}, got {cold_start!r}")
        values = np.asarray(raw_ids, dtype=object) if not isinstance(raw_ids, np.ndarray) else raw_ids
        indices = id_map.indices(values, missing="none").astype(np.int64)
        known = indices >= 0
        cold = ~known
        cold[known] = ~trained[indices[known]]
        if cold.any() and cold_start == "error":
            first = int(np.argmax(cold))
            raw = values[first]
            if known[first]:
                raise UnknownIdError(
                    id_map.name,
                    raw,
                    f"{id_map.name} id {raw!r} has no training ratings; use cold_start='bias' for a fallback",
                )
            raise UnknownIdError(id_map.name, raw)
        indices[cold] = -1
        return indices

    def _user_index(self, user: Any) -> int:
        return int(self._lookup([user], self.user_ids, self._trained_users, "error")[0])

    # ---- predictions ---------------------------------------------------------------------------------------
    def _fallback_terms(self) -> tuple[float, np.ndarray, np.ndarray]:
        """(global mean, user biases, item biases) in rating units for cold-start answers.

        Taken from the model when it has bias terms, else estimated from the training ratings as damped mean
        offsets (global mean first, then item offsets, then user offsets of the residual).
        """
        if self._fallback is None:
            terms = self.model.bias_terms()
            if terms is not None:
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
        """Clipped predictions for index pairs (-1 = cold) and a cold code per pair (0, 1 user, 2 item, 3).

        With ``timestamps`` (unix seconds, aligned with the pairs) a model that uses time scores each warm pair
        at its own time (``predict_at``); other models ignore them.
        """
        users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
        cold_code = (users < 0).astype(np.int8) + 2 * (items < 0).astype(np.int8)
        out = np.empty(len(users), dtype=np.float32)
        warm = np.flatnonzero(cold_code == 0)
        device = self.device
        times = self._model_times(timestamps, len(users))
        for start in range(0, len(warm), _MATMUL_CELLS):
            rows = warm[start : start + _MATMUL_CELLS]
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
        """Predicted rating of one (user, item) pair in raw ids, clipped to the rating scale.

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

    # ---- ranking -------------------------------------------------------------------------------------------
    def _chunk_users(self) -> int:
        from deepmf.models.base import RatingModel

        overridden = type(self.model).score_all_items is not RatingModel.score_all_items
        cells = _MATMUL_CELLS if overridden else _GRID_CELLS
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
        """Items that may be recommended: those with at least ``min_ratings`` training ratings (>= 1)."""
        if isinstance(min_ratings, bool) or not isinstance(min_ratings, (int, np.integer)) or min_ratings < 1:
            raise ConfigError(f"min_ratings must be a positive number of ratings, got {min_ratings}")
        return self._trained_items if min_ratings == 1 else self.seen.item_counts() >= min_ratings

    def _top_k(
        self, users: np.ndarray, k: int, exclude_seen: bool, min_ratings: int = 1
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (items (B, k) with -1 padding, clipped scores (B, k)) per chunk of user indices."""
        device = self.device
        k = min(k, self.n_items)  # bounded work: longer lists could only be padding
        candidates = self._candidates(min_ratings)
        untrained = torch.from_numpy(np.flatnonzero(~candidates)).to(device)
        n_candidates = int(candidates.sum())
        width = min(k, n_candidates)
        chunk_size = self._chunk_users()
        for start in range(0, len(users), chunk_size):
            chunk = users[start : start + chunk_size]
            scores = self._score_users(chunk)
            if len(untrained):
                scores[:, untrained] = -math.inf
            if exclude_seen:
                positions, items, _ = self.seen.rows(np.maximum(chunk, 0))
                keep = chunk[positions] >= 0
                scores[
                    torch.from_numpy(positions[keep]).to(device),
                    torch.from_numpy(items[keep].astype(np.int64)).to(device),
                ] = -math.inf
            top_scores, top_items = torch.topk(scores, width, dim=1)
            top_scores, top_items = top_scores.cpu().numpy(), top_items.cpu().numpy().astype(np.int64)
            empty = ~np.isfinite(top_scores)
            top_items[empty] = -1
            out_items = np.full((len(chunk), k), -1, dtype=np.int64)
            out_scores = np.full((len(chunk), k), np.nan, dtype=np.float32)
            out_items[:, :width] = top_items
            out_scores[:, :width] = np.where(
                empty, np.nan, np.clip(top_scores, self.scale.minimum, self.scale.maximum)
            )
            yield out_items, out_scores

    @staticmethod
    def _check_n(n: int) -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"n must be a positive number of items, got {n}")

    def recommend(
        self,
        user: Any,
        n: int = 10,
        exclude_seen: bool = True,
        cold_start: ColdStart = "error",
        min_ratings: int = 1,
    ) -> pd.DataFrame:
        """Top-n items for one user: a DataFrame with columns item, title, score (predicted rating).

        With ``cold_start="bias"`` an unknown user gets the items with the highest global mean + item bias,
        and ``result.attrs["cold_start"]`` is "user". ``min_ratings`` leaves out items with fewer training
        ratings: explicit-rating models put rare, highly rated items first (a film five people loved), which
        users often do not want.

        Raises:
            ConfigError: n < 1 or min_ratings < 1.
            UnknownIdError: an unknown user with ``cold_start="error"``.
        """
        self._check_n(n)
        index = self._lookup([user], self.user_ids, self._trained_users, cold_start)
        items, scores = next(self._top_k(index, n, exclude_seen, min_ratings))
        valid = items[0] >= 0
        frame = pd.DataFrame(
            {
                "item": self.item_ids.raw(items[0][valid]),
                "title": self._titles(items[0][valid]),
                "score": scores[0][valid],
            }
        )
        if index[0] < 0:
            frame.attrs["cold_start"] = "user"
        return frame

    def recommend_many(
        self, users: Sequence[Any] | np.ndarray, n: int = 10, exclude_seen: bool = True, min_ratings: int = 1
    ) -> pd.DataFrame:
        """Top-n items for many users, scored in chunks: columns user, rank (1-based), item, title, score.

        ``min_ratings`` as in ``recommend``.

        Raises:
            ConfigError: n < 1 or min_ratings < 1.
            UnknownIdError: an unknown or untrained user.
        """
        self._check_n(n)
        index = self._lookup(users, self.user_ids, self._trained_users, "error")
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

    # ---- similarity ----------------------------------------------------------------------------------------
    def item_vectors(self) -> np.ndarray | None:
        """The model's learned item vectors (n_items, d) as float32 numpy, or None if it has none."""
        try:
            return self.model.item_embeddings().detach().float().cpu().numpy()
        except NotImplementedError:
            return None

    def _embeddings(self, side: str) -> torch.Tensor:
        try:
            vectors = self.model.item_embeddings() if side == "item" else self.model.user_embeddings()
        except NotImplementedError:
            raise ConfigError(f"model {self.model_name!r} has no {side} embeddings to compare") from None
        return vectors.detach().float()

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
        vectors = self._embeddings(side)
        if metric == "cosine":
            vectors = torch.nn.functional.normalize(vectors, dim=1)
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
        return pd.DataFrame({"item": self.item_ids.raw(items), "title": self._titles(items), "score": scores})

    def similar_users(self, user: Any, n: int = 10, metric: Metric = "cosine") -> pd.DataFrame:
        """Users whose learned vectors are closest to ``user``'s (itself excluded): user, score."""
        _, users, scores = self._similar("user", user, n, metric)
        return pd.DataFrame({"user": self.user_ids.raw(users), "score": scores})

    # ---- evaluation ----------------------------------------------------------------------------------------
    def evaluate(
        self,
        ratings: Ratings,
        k: int = 10,
        relevant_threshold: float | None = None,
        cold_start: ColdStart = "bias",
        use_time: bool = True,
    ) -> Evaluation:
        """Accuracy and ranking metrics on held-out ratings.

        Rating metrics (RMSE, MAE; accuracy of the most likely class for a classification head) cover every
        held-out rating; cold pairs use the fallback of ``cold_start`` and are counted in ``n_cold``. When the
        held-out ratings have timestamps and the model uses time (``model.uses_time``), each rating is
        predicted at its own time, as in Rendle et al. 2019 and myFM (the day of a rating is part of the
        query); ``scored_at_rating_time`` in the metrics says whether that happened.
        Ranking metrics: each user with training ratings and at least one *relevant* held-out rating
        (rating >= ``relevant_threshold``, default 4 on a 1..5 scale, i.e. 75 % of the way up the scale)
        gets a top-k list over all trained items minus the items they rated in training; precision@k,
        recall@k, NDCG@k and hit rate are averaged over those users, coverage is the share of trained items
        recommended to anyone. Ranking is time-free, like ``recommend``: a top-k list is for no particular day.

        Args:
            ratings: held-out ratings, in any id maps (they are matched by raw id).
            k: list length for ranking metrics.
            relevant_threshold: minimum held-out rating counted as relevant.
            cold_start: "bias" (fallback, counted) or "error" (refuse cold ids).
            use_time: score at the ratings' timestamps when possible (False: as ``predict`` without times).
        """
        from deepmf.evaluation.metrics import accuracy, mae, rmse

        self._check_n(k)
        if len(ratings) == 0:
            raise ConfigError("cannot evaluate on an empty set of ratings")
        threshold = self.default_relevant() if relevant_threshold is None else float(relevant_threshold)
        users = self._lookup(
            ratings.user_ids.raw(ratings.users), self.user_ids, self._trained_users, cold_start
        )
        items = self._lookup(
            ratings.item_ids.raw(ratings.items), self.item_ids, self._trained_items, cold_start
        )
        actual = np.asarray(ratings.ratings, dtype=np.float32)
        timed = use_time and ratings.timestamps is not None and self.model.uses_time
        predicted, cold = self._predict_indices(users, items, ratings.timestamps if timed else None)
        metrics: dict[str, Any] = {
            "n_ratings": len(actual),
            "n_cold": int((cold > 0).sum()),
            "rmse": float(rmse(predicted, actual)),
            "mae": float(mae(predicted, actual)),
            "scored_at_rating_time": timed,
        }
        if self.model.head == "classification":
            # Both readings of a classifier: the expected rating (rmse/mae above) and the most likely class.
            most_likely = self._most_likely(users, items, cold)
            metrics["accuracy"] = float(accuracy(most_likely, actual))
            metrics["rmse_most_likely"] = float(rmse(most_likely, actual))
            metrics["mae_most_likely"] = float(mae(most_likely, actual))
        metrics.update(k=k, relevant_threshold=threshold)
        metrics.update(self._ranking(users, items, actual >= threshold, k))
        return Evaluation(metrics, actual, predicted)

    def default_relevant(self) -> float:
        """Relevance threshold: 4 on a 1..5 scale, the same relative position on other scales (snapped)."""
        value = self.scale.minimum + 0.75 * (self.scale.maximum - self.scale.minimum)
        return float(
            self.scale.minimum + round((value - self.scale.minimum) / self.scale.step) * self.scale.step
        )

    def _most_likely(self, users: np.ndarray, items: np.ndarray, cold: np.ndarray) -> np.ndarray:
        """Most likely class's rating per pair (classification head); cold pairs use the rounded fallback."""
        out = np.empty(len(users), dtype=np.float32)
        warm = np.flatnonzero(cold == 0)
        device = self.device
        for start in range(0, len(warm), _MATMUL_CELLS):
            rows = warm[start : start + _MATMUL_CELLS]
            out[rows] = (
                self.model.predict_most_likely(
                    torch.from_numpy(users[rows]).to(device), torch.from_numpy(items[rows]).to(device)
                )
                .float()
                .cpu()
            )
        cold_rows = np.flatnonzero(cold)
        if len(cold_rows):
            fallback, _ = self._predict_indices(users[cold_rows], items[cold_rows])
            out[cold_rows] = self.scale.class_values()[self.scale.to_class(fallback)]
        return out

    def _ranking(self, users: np.ndarray, items: np.ndarray, relevant: np.ndarray, k: int) -> dict[str, Any]:
        ranked_users = np.unique(users[relevant & (users >= 0)])
        row_of_user = np.full(self.n_users, -1, dtype=np.int64)
        row_of_user[ranked_users] = np.arange(len(ranked_users))
        keep = relevant & (users >= 0)
        indptr, indices = relevant_csr(row_of_user[users[keep]], items[keep], len(ranked_users))
        # Relevant test items the model never trained on stay in the denominator: they are honest misses.
        top = [items_chunk for items_chunk, _ in self._top_k(ranked_users, k, exclude_seen=True)]
        top_items = np.concatenate(top) if top else np.zeros((0, k), dtype=np.int64)
        # They get index n_items, which no list contains.
        metrics = ranking_metrics(
            top_items, indptr, np.where(indices < 0, self.n_items, indices), int(self._trained_items.sum()), k=k
        )
        metrics["n_ranked_users"] = metrics.pop("n_users")
        return metrics

    # ---- save / load ---------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str], *, overwrite: bool = True, keep_checkpoint: bool = False) -> Path:
        """Write the model folder (``model.safetensors`` + ``model.json``) atomically; see ``deepmf.io``.

        Only a new path, an empty folder or a deepmf model folder (with ``overwrite``) is written; see
        ``deepmf.folders`` for the rule. ``keep_checkpoint`` carries the folder's training checkpoint over.

        Raises:
            OutputError: the path is not deepmf's to replace, or the system refused; nothing was changed.
        """
        tensors = {f"model.{name}": t for name, t in self.model.state_dict().items()}
        tensors.update(
            {
                "seen.indptr": torch.from_numpy(self.seen.indptr),
                "seen.items": torch.from_numpy(self.seen.items),
                "seen.ratings": torch.from_numpy(self.seen.ratings),
            }
        )
        item_table = None
        if self.item_table is not None:
            item_table = {
                "titles": [str(t) for t in self.item_table.titles],
                "genre_names": list(self.item_table.genre_names),
            }
            if self.item_table.genres is not None:
                tensors["items.genres"] = torch.from_numpy(np.asarray(self.item_table.genres, dtype=np.uint8))
        evaluation = None
        if self.evaluation is not None:
            evaluation = self.evaluation.to_dict()
            tensors["evaluation.actual"] = torch.from_numpy(self.evaluation.actual)
            tensors["evaluation.predicted"] = torch.from_numpy(self.evaluation.predicted)
        meta = {
            "model": {
                "name": self.model_name,
                "head": self.model.head,
                "config": self.model.config_dict(),
                "options": self.model_options,
            },
            "users": {"kind": self.user_ids.kind, "ids": self.user_ids.to_list()},
            "items": {"kind": self.item_ids.kind, "ids": self.item_ids.to_list()},
            "scale": self.scale.to_dict(),
            "item_table": item_table,
            "train_config": None if self.train_config is None else self.train_config.to_dict(),
            "history": self.history,
            "summary": self.summary,
            "evaluation": evaluation,
        }
        return io.write_model_folder(path, tensors, _json_safe(meta), overwrite=overwrite,
                                     keep_checkpoint=keep_checkpoint)

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Recommender:
        """Load a model folder written by ``save``, checking everything before building anything.

        Raises:
            ModelFormatError: missing folder or file, invalid or edited JSON, unknown format version,
                truncated or tampered tensors, shapes or dtypes that disagree with the model config or the
                id maps.
        """
        from deepmf.device import resolve_device

        tensors, meta = io.read_model_folder(path)
        where = Path(path) / io.META_FILE
        try:
            parts = _parse_folder(tensors, meta, where)
        except (ModelFormatError, ResourceError):
            raise
        except (DeepMFError, KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFormatError(f"{where}: inconsistent model folder ({reason})") from None
        recommender = cls(**parts)
        recommender.model.to(resolve_device(device))
        return recommender


def _json_safe(value: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, so model.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _parse_folder(tensors: dict[str, torch.Tensor], meta: dict[str, Any], where: Path) -> dict[str, Any]:
    """Validate a model folder's contents against each other and return Recommender keyword arguments."""
    from deepmf.models.registry import model_from_config
    from deepmf.training.config import TrainConfig

    model_meta = io.get(meta, "model", dict, where)
    name = io.get(model_meta, "name", str, f"{where} [model]")
    config = io.get(model_meta, "config", dict, f"{where} [model]")
    options = io.get(model_meta, "options", dict, f"{where} [model]", optional=True) or {}
    state = {key.removeprefix("model."): t for key, t in tensors.items() if key.startswith("model.")}
    try:
        model = model_from_config(name, config, state)
    except (ModelFormatError, ResourceError) as exc:
        raise type(exc)(f"{where}: {exc}") from None
    model.load_state_dict(state, strict=True)

    maps = []
    for side in ("users", "items"):
        section = io.get(meta, side, dict, where)
        kind = io.get(section, "kind", str, f"{where} [{side}]")
        ids = io.get(section, "ids", list, f"{where} [{side}]")
        if kind not in ("int", "str"):
            raise ModelFormatError(f"{where}: [{side}] kind must be 'int' or 'str', got {kind!r}")
        maps.append(IdMap.from_list(ids, kind, name=side[:-1]))
    user_ids, item_ids = maps
    n_users, n_items = config.get("n_users"), config.get("n_items")
    if (n_users is not None and n_users != len(user_ids)) or (
        n_items is not None and n_items != len(item_ids)
    ):
        raise ModelFormatError(
            f"{where}: id maps have {len(user_ids)} users / {len(item_ids)} items but the model "
            f"config says {n_users} / {n_items}"
        )
    seen = _parse_seen(tensors, len(user_ids), len(item_ids), where)
    scale = RatingScale.from_dict(io.get(meta, "scale", dict, where))
    if not (scale.minimum < scale.maximum and scale.step > 0):
        raise ModelFormatError(f"{where}: invalid rating scale {scale}")
    item_table = _parse_item_table(meta, tensors, len(item_ids), where)
    train_values = io.get(meta, "train_config", dict, where, optional=True)
    evaluation = None
    evaluation_meta = io.get(meta, "evaluation", dict, where, optional=True)
    if evaluation_meta is not None:
        actual, predicted = tensors.get("evaluation.actual"), tensors.get("evaluation.predicted")
        if actual is None or predicted is None or actual.shape != predicted.shape or actual.ndim != 1:
            raise ModelFormatError(f"{where}: evaluation tensors are missing or misshapen")
        evaluation = Evaluation(evaluation_meta, actual.float().numpy(), predicted.float().numpy())
    history = io.get(meta, "history", list, where, optional=True) or []
    if not all(isinstance(record, dict) for record in history):
        raise ModelFormatError(f"{where}: history must be a list of objects")
    return {
        "model": model,
        "model_name": name,
        "user_ids": user_ids,
        "item_ids": item_ids,
        "scale": scale,
        "item_table": item_table,
        "seen": seen,
        "train_config": None if train_values is None else TrainConfig.from_dict(train_values),
        "history": history,
        "model_options": options,
        "summary": io.get(meta, "summary", dict, where, optional=True) or {},
        "evaluation": evaluation,
    }


def _parse_seen(tensors: dict[str, torch.Tensor], n_users: int, n_items: int, where: Path) -> SeenRatings:
    try:
        indptr, items, ratings = (tensors[f"seen.{name}"] for name in ("indptr", "items", "ratings"))
    except KeyError as exc:
        raise ModelFormatError(f"{where}: training ratings tensor {exc.args[0]!r} is missing") from None
    indptr_np, items_np = indptr.numpy().astype(np.int64), items.numpy().astype(np.int32)
    valid = (
        indptr_np.ndim == 1
        and len(indptr_np) == n_users + 1
        and indptr_np[0] == 0
        and bool(np.all(np.diff(indptr_np) >= 0))
        and indptr_np[-1] == len(items_np) == len(ratings)
        and (len(items_np) == 0 or (items_np.min() >= 0 and items_np.max() < n_items))
    )
    if not valid:
        raise ModelFormatError(f"{where}: training ratings do not match {n_users} users x {n_items} items")
    return SeenRatings(indptr_np, items_np, ratings.float().numpy(), n_items)


def _parse_item_table(
    meta: dict[str, Any], tensors: dict[str, torch.Tensor], n_items: int, where: Path
) -> ItemTable | None:
    section = io.get(meta, "item_table", dict, where, optional=True)
    if section is None:
        return None
    titles = io.get(section, "titles", list, f"{where} [item_table]")
    genre_names = io.get(section, "genre_names", list, f"{where} [item_table]")
    genres = tensors.get("items.genres")
    if len(titles) != n_items or (genres is not None and tuple(genres.shape) != (n_items, len(genre_names))):
        raise ModelFormatError(f"{where}: item titles/genres do not match the {n_items} items")
    title_array = np.empty(n_items, dtype=object)
    title_array[:] = [str(t) for t in titles]
    return ItemTable(
        title_array,
        None if genres is None else genres.numpy().astype(bool),
        tuple(str(g) for g in genre_names),
    )
