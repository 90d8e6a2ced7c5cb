"""The one place raw ids (ints or strings) are mapped to dense 0-based indices and back."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from deepmf.errors import DataError, UnknownIdError

IdKind = Literal["int", "str"]
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT_TEXT = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True, eq=False)
class IdMap:
    """A bijection between raw ids and indices ``0..len-1``.

    ``raw_ids[index]`` is the raw id; the order is sorted (numeric for int ids, lexicographic for strings), so
    the same set of ids always gives the same map.

    Attributes:
        raw_ids: numpy array of raw ids, int64 or object (str), in index order.
        kind: "int" or "str".
        name: what the ids are ("user" or "item"), used in error messages.
    """

    raw_ids: np.ndarray
    kind: IdKind
    name: str = "id"
    _index: pd.Index = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index = pd.Index(self.raw_ids)
        if not index.is_unique:
            raise DataError(f"{self.name} id map has duplicate raw ids")
        object.__setattr__(self, "_index", index)

    # ---- construction --------------------------------------------------------------------------------------
    @classmethod
    def build(
        cls, values: Sequence[Any] | np.ndarray | pd.Series, name: str = "id"
    ) -> tuple[IdMap, np.ndarray]:
        """Build a map from raw id values and return it with the int32 codes of ``values``."""
        series = pd.Series(values)
        kind: IdKind = "int" if pd.api.types.is_integer_dtype(series.dtype) else "str"
        if kind == "str":
            series = series.astype(str)
        codes, uniques = pd.factorize(series, sort=True)
        raw = np.asarray(uniques, dtype=np.int64 if kind == "int" else object)
        return cls(raw, kind, name), codes.astype(np.int32, copy=False)

    @classmethod
    def from_list(cls, raw_ids: Iterable[Any], kind: IdKind, name: str = "id") -> IdMap:
        """Rebuild a map from its JSON form (``to_list`` and ``kind``)."""
        values = list(raw_ids)
        if kind == "int":
            arr = np.asarray(values, dtype=np.int64)
        elif kind == "str":
            arr = np.empty(len(values), dtype=object)
            arr[:] = [str(v) for v in values]
        else:
            raise DataError(f"unknown id kind {kind!r}")
        return cls(arr, kind, name)

    def to_list(self) -> list[Any]:
        return [int(v) for v in self.raw_ids] if self.kind == "int" else [str(v) for v in self.raw_ids]

    # ---- lookups -------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.raw_ids)

    def __contains__(self, raw_id: object) -> bool:
        return self.coerce(raw_id) in self._index

    def coerce(self, raw_id: object) -> Any:
        """Convert a raw id typed by a user (e.g. "42" on a command line) to this map's id type.

        For int ids, what is no 64-bit integer (True, 2**70, "abc", a list) comes back as it is and is then
        found in no map: True is not user 1.
        """
        if self.kind == "int":
            value = _as_int64(raw_id)
            return raw_id if value is None else value
        return str(raw_id)

    def index(self, raw_id: object) -> int:
        """Index of one raw id. Raises UnknownIdError when it is not in the map."""
        key = self.coerce(raw_id)
        if self.kind == "int" and _as_int64(raw_id) is None:
            raise UnknownIdError(self.name, raw_id)
        try:
            loc = self._index.get_loc(key)
        except (KeyError, TypeError, ValueError):
            raise UnknownIdError(self.name, raw_id) from None
        return int(loc)

    def indices(
        self, raw_ids: Sequence[Any] | np.ndarray | pd.Series, missing: Literal["error", "none"] = "error"
    ) -> np.ndarray:
        """Vectorised lookup. ``missing="none"`` maps unknown ids to -1 instead of raising."""
        values = pd.Series(raw_ids)
        if self.kind == "int" and not pd.api.types.is_integer_dtype(values.dtype):
            # One by one, exactly: through floats, "9007199254740993" would become another user's id.
            values = pd.Series(pd.array([_as_int64(value) for value in values], dtype="Int64"), index=values.index)
        elif self.kind == "str":
            values = values.astype(str)
        codes = self._index.get_indexer(values).astype(np.int32)
        if missing == "error" and (codes < 0).any():
            first = pd.Series(raw_ids).iloc[int(np.argmax(codes < 0))]
            raise UnknownIdError(self.name, first)
        return codes

    def raw(self, indices: int | np.ndarray) -> Any:
        """Raw id(s) of index/indices."""
        if isinstance(indices, (int, np.integer)):
            value = self.raw_ids[int(indices)]
            return int(value) if self.kind == "int" else str(value)
        return self.raw_ids[np.asarray(indices)]


def _as_int64(value: object) -> int | None:
    """``value`` as a 64-bit integer id (7, np.int64(7), 7.0, "7", " 07 ", "7.0"), else None (True, 7.5, 2**70,
    "abc", a list). Exact: a float is taken only where it holds an integer exactly."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, str) and _INT_TEXT.fullmatch(value.strip()):
        number = int(value.strip())
    elif isinstance(value, (float, np.floating, str)):
        try:
            real = float(value)
        except ValueError:
            return None
        if not (math.isfinite(real) and real.is_integer() and abs(real) <= 2**53):
            return None
        number = int(real)
    else:
        return None
    return number if _INT64_MIN <= number <= _INT64_MAX else None


class UserItemMaps:
    """``n_users`` / ``n_items`` for a class that holds ``user_ids`` and ``item_ids`` maps (Ratings, Recommender).

    Sizes come from the maps, not from the ratings held: a subset or a model knows every user and item of the
    full data set it was built on.
    """

    user_ids: IdMap
    item_ids: IdMap

    @property
    def n_users(self) -> int:
        """Size of the user id map (all users of the full data set, not only those in this subset)."""
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        """Size of the item id map (all items of the full data set)."""
        return len(self.item_ids)
