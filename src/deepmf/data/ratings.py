"""The Ratings object: columnar (user index, item index, rating, timestamp) arrays, id maps, side tables.

Every source (MovieLens edition, user file, synthetic generator) produces one; splits produce Ratings that
share the parent's id maps and side tables, so a model never meets an index it cannot embed.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from deepmf.data.idmap import IdMap, UserItemMaps
from deepmf.errors import DataError

# Steps a detected scale may have, coarsest first; continuous ratings are reported with the finest.
SCALE_STEPS = (1.0, 0.5, 0.25, 0.1, 0.01)
# Distinct ratings are counted on a grid of 1/_GRID (one O(n) pass, no sort) when every rating lies on it.
_GRID = 100
_MAX_BINS = 1 << 22
_SLICE = 1 << 20


def distinct_counts(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values (float64, ascending) of a rating array and how often each occurs.

    A histogram on a 0.01 grid when every value lies on one (every star scale does): a few vectorised passes,
    about twice as fast as ``np.unique``'s sort at 20M ratings. Other values fall back to ``np.unique``.
    """
    if len(values) == 0:
        return np.empty(0), np.empty(0, dtype=np.int64)
    lo, hi = float(np.min(values)), float(np.max(values))
    bins = round((hi - lo) * _GRID) + 1 if np.isfinite(lo) and np.isfinite(hi) else _MAX_BINS + 1
    if bins <= _MAX_BINS:
        # float32 arithmetic is exact enough (well under the 1e-3 grid tolerance) while scaled values stay small.
        work = np.float32 if bins <= 4096 and values.dtype == np.float32 else np.float64
        counts = np.zeros(bins, dtype=np.int64)
        for start in range(0, len(values), _SLICE):
            scaled = values[start : start + _SLICE].astype(work)
            scaled -= work(lo)
            scaled *= work(_GRID)
            codes = np.rint(scaled)
            scaled -= codes
            if np.abs(scaled).max() > 1e-3:
                break
            counts += np.bincount(codes.astype(np.intp), minlength=bins)
        else:
            present = np.flatnonzero(counts)
            # Through the values' own dtype, so each distinct value equals the stored ratings it stands for.
            distinct = (lo + present / _GRID).astype(values.dtype).astype(np.float64)
            return distinct, counts[present]
    distinct, counts = np.unique(values, return_counts=True)
    return distinct.astype(np.float64), counts.astype(np.int64)


def on_grid(values: np.ndarray, step: float) -> np.ndarray:
    """Whether each value is a multiple of ``step`` (to float32 precision)."""
    return np.abs(np.round(values / step) * step - values) <= 1e-6 * np.maximum(1.0, np.abs(values))


def step_of(distinct: np.ndarray) -> float:
    """The coarsest of ``SCALE_STEPS`` that every value is a multiple of (0.01 for continuous ratings)."""
    for candidate in SCALE_STEPS:
        if np.all(on_grid(distinct, candidate)):
            return candidate
    return SCALE_STEPS[-1]  # continuous ratings: treat as 0.01 steps for reporting; classification will refuse


FEEDBACKS = ("explicit", "implicit")


@dataclass(frozen=True)
class RatingScale:
    """The declared rating scale: ``minimum..maximum`` in steps of ``step`` (1..5 by 1, 0.5..5 by 0.5)."""

    minimum: float
    maximum: float
    step: float

    @property
    def n_classes(self) -> int:
        """Number of distinct rating values (classes for the classification head)."""
        return round((self.maximum - self.minimum) / self.step) + 1

    def class_values(self) -> np.ndarray:
        """Rating value of each class, ascending."""
        return (self.minimum + self.step * np.arange(self.n_classes)).astype(np.float32)

    def to_class(self, ratings: np.ndarray | torch.Tensor) -> Any:
        """Class index of each rating (nearest step)."""
        if isinstance(ratings, torch.Tensor):
            return torch.round((ratings - self.minimum) / self.step).long().clamp_(0, self.n_classes - 1)
        return np.clip(np.rint((ratings - self.minimum) / self.step), 0, self.n_classes - 1).astype(np.int64)

    @classmethod
    def detect(cls, ratings: np.ndarray) -> RatingScale:
        """Infer the scale from observed values: min, max, the coarsest step of 1, 0.5, 0.25, 0.1, 0.01."""
        if len(ratings) == 0:
            raise DataError("cannot detect a rating scale from no ratings")
        distinct, _ = distinct_counts(ratings)
        return cls(float(np.min(ratings)), float(np.max(ratings)), step_of(distinct))

    def to_dict(self) -> dict[str, float]:
        return {"min": self.minimum, "max": self.maximum, "step": self.step}

    @classmethod
    def from_dict(cls, d: dict[str, float]) -> RatingScale:
        return cls(float(d["min"]), float(d["max"]), float(d["step"]))


@dataclass(frozen=True)
class ItemTable:
    """Per-item side data, row i describing item index i.

    Attributes:
        titles: object array of titles ("" where unknown).
        genres: bool matrix (n_items, n_genres), multi-hot.
        genre_names: names of the genre columns.
    """

    titles: np.ndarray
    genres: np.ndarray | None = None
    genre_names: tuple[str, ...] = ()

    @property
    def first_genre(self) -> np.ndarray:
        """Index of each item's first listed genre, -1 where it has none (int64)."""
        if self.genres is None:
            return np.full(len(self.titles), -1, dtype=np.int64)
        has_any = self.genres.any(axis=1)
        return np.where(has_any, self.genres.argmax(axis=1), -1).astype(np.int64)


@dataclass(frozen=True)
class UserTable:
    """Per-user demographics, row u describing user index u (editions ml-100k and ml-1m have these).

    Attributes:
        age: int array (years for ml-100k, age-bucket code for ml-1m); -1 unknown.
        gender: object array ("M"/"F"/"" unknown).
        occupation: object array of occupation names or codes ("" unknown).
        zip_code: object array of zip codes ("" unknown).
    """

    age: np.ndarray
    gender: np.ndarray
    occupation: np.ndarray
    zip_code: np.ndarray


@dataclass(frozen=True)
class RatingTensors:
    """Ratings as torch tensors on one device, for batch slicing (users/items int64, ratings float32, and the
    int64 unix-second timestamps when asked for and known)."""

    users: torch.Tensor
    items: torch.Tensor
    ratings: torch.Tensor
    timestamps: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.users.shape[0])


@dataclass(frozen=True, eq=False)
class Ratings(UserItemMaps):
    """Ratings (or implicit interactions) as columnar arrays with id maps and optional side tables.

    Attributes:
        users: int32 user indices into ``user_ids``.
        items: int32 item indices into ``item_ids``.
        ratings: float32 ratings.
        timestamps: int64 unix seconds, or None.
        user_ids: id map of every user of the full data set (splits share it).
        item_ids: id map of every item of the full data set (splits share it).
        scale: the rating scale of the full data set.
        item_table: titles and genres, or None.
        user_table: demographics, or None.
        name: where the ratings came from (edition name or file path), for reports.
        meta: provenance (edition, path; for implicit feedback the ``positive`` threshold and the source scale).
        feedback: "explicit" (``ratings`` are star ratings on ``scale``) or "implicit" (every row is a positive
            interaction and ``ratings`` holds its weight, the number of events; see ``deepmf.data.implicit``).
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    user_ids: IdMap
    item_ids: IdMap
    scale: RatingScale
    timestamps: np.ndarray | None = None
    item_table: ItemTable | None = None
    user_table: UserTable | None = None
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    feedback: str = "explicit"

    def __post_init__(self) -> None:
        # Cheap structural checks (a few reductions), so a wrong argument fails here with one line, not later
        # inside a kernel; values (NaN, scale) are the loaders' job.
        if not isinstance(self.user_ids, IdMap) or not isinstance(self.item_ids, IdMap):
            raise DataError("Ratings needs IdMap user_ids and item_ids (build Ratings with deepmf.load)")
        if not isinstance(self.scale, RatingScale):
            raise DataError(f"Ratings needs a RatingScale, not {type(self.scale).__name__}")
        columns = {"users": np.int32, "items": np.int32, "ratings": np.float32, "timestamps": np.int64}
        for name, dtype in columns.items():
            value = getattr(self, name)
            if value is None and name == "timestamps":
                continue
            array = np.asarray(value)
            numeric = "iu" if dtype is not np.float32 else "iuf"
            if array.ndim != 1 or array.dtype.kind not in numeric:
                raise DataError(f"Ratings.{name} must be a 1-D array of {np.dtype(dtype).name} values")
            if array.dtype != dtype:
                array = array.astype(dtype)
            object.__setattr__(self, name, array)
        if self.feedback not in FEEDBACKS:
            raise DataError(f"feedback must be one of {', '.join(FEEDBACKS)}, got {self.feedback!r}")
        n = len(self.users)
        if (
            len(self.items) != n
            or len(self.ratings) != n
            or (self.timestamps is not None and len(self.timestamps) != n)
        ):
            raise DataError("users, items, ratings and timestamps must have the same length")
        for indices, id_map in ((self.users, self.user_ids), (self.items, self.item_ids)):
            if n and (int(indices.min()) < 0 or int(indices.max()) >= len(id_map)):
                raise DataError(f"{id_map.name} indices must lie in 0..{len(id_map) - 1} (the size of its id map)")

    # ---- construction --------------------------------------------------------------------------------------
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        user_col: str = "user",
        item_col: str = "item",
        rating_col: str = "rating",
        time_col: str | None = None,
        scale: RatingScale | None = None,
        name: str = "",
        duplicates: str = "error",
    ) -> Ratings:
        """Build from a DataFrame of raw ids, validated as ``deepmf.load`` validates a file: empty or NaN values,
        duplicate (user, item) pairs (``duplicates``: "error", "last" or "mean") and ratings outside a declared
        ``scale`` are DataErrors naming the row; without a scale it is inferred, with a DataWarning when a few
        ratings lie far from the rest. ``deepmf.load(frame, ...)`` is the same with header aliases.
        """
        # Imported here: the loaders build on this module.
        from deepmf.data.files import ratings_from_raw
        from deepmf.data.frames import raw_from_frame

        raw = raw_from_frame(frame, user_col=user_col, item_col=item_col, rating_col=rating_col, time_col=time_col,
                             label=name or "DataFrame", aliases=False)
        return ratings_from_raw(raw, duplicates=duplicates, scale=scale, name=name)

    # ---- shape ---------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.users)

    def __repr__(self) -> str:
        """One line: name, sizes, scale and which side data is present (not the arrays)."""
        items = self.item_table
        present = {"timestamps": self.timestamps is not None, "titles": items is not None,
                   "genres": items is not None and items.genres is not None,
                   "demographics": self.user_table is not None}
        side = [name for name, here in present.items() if here]
        scale = self.scale
        if self.feedback == "implicit":
            rows, kind = "interactions", "implicit feedback"
        else:
            rows, kind = "ratings", f"scale {scale.minimum:g}..{scale.maximum:g} by {scale.step:g}"
        return (f"Ratings({self.name or 'unnamed'!r}: {len(self):,} {rows}, {self.n_users:,} users, "
                f"{self.n_items:,} items, {kind}" + (f", with {', '.join(side)}" if side else "") + ")")

    @property
    def global_mean(self) -> float:
        return float(self.ratings.mean(dtype=np.float64)) if len(self) else float("nan")

    # ---- derived data --------------------------------------------------------------------------------------
    def subset(self, index: np.ndarray) -> Ratings:
        """Rows selected by a boolean mask or an integer index array; maps and side tables are shared."""
        ts = None if self.timestamps is None else self.timestamps[index]
        return replace(
            self, users=self.users[index], items=self.items[index], ratings=self.ratings[index], timestamps=ts
        )

    def with_ratings(self, ratings: np.ndarray) -> Ratings:
        """Same rows, other rating values (e.g. NaN-masked copies in tests)."""
        return replace(self, ratings=np.asarray(ratings, dtype=np.float32))

    def to(self, device: str | torch.device = "cpu", timestamps: bool = False) -> RatingTensors:
        """Tensors on ``device``: users/items int64 (embedding indices), ratings float32.

        On the CPU the ratings tensor shares this object's array when it already is contiguous, writable
        float32 (the usual case); it is copied only when it is not (torch cannot wrap a read-only array).
        With ``timestamps`` the ratings' times come too (None when the ratings have none): scoring needs them
        for models that use time, training never does, so they are left out by default.
        """
        times = self.timestamps if timestamps else None
        return RatingTensors(
            torch.from_numpy(self.users.astype(np.int64)).to(device),
            torch.from_numpy(self.items.astype(np.int64)).to(device),
            torch.from_numpy(np.require(self.ratings, np.float32, ["C", "W"])).to(device),
            None if times is None else torch.from_numpy(times.astype(np.int64)).to(device),
        )

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame in raw ids: user, item, rating (and timestamp)."""
        frame = pd.DataFrame(
            {
                "user": self.user_ids.raw(self.users),
                "item": self.item_ids.raw(self.items),
                "rating": self.ratings,
            }
        )
        if self.timestamps is not None:
            frame["timestamp"] = self.timestamps
        return frame

    def user_counts(self) -> np.ndarray:
        """Ratings per user index (length n_users)."""
        return np.bincount(self.users, minlength=self.n_users)

    def item_counts(self) -> np.ndarray:
        """Ratings per item index (length n_items)."""
        return np.bincount(self.items, minlength=self.n_items)

    def item_title(self, index: int) -> str:
        if self.item_table is None:
            return ""
        return str(self.item_table.titles[index])
