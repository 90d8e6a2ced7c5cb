"""Raw ids and titles -> indices: the only place a raw id becomes a row of the model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from deepmf.data.idmap import IdMap
from deepmf.errors import ConfigError, UnknownIdError
from deepmf.recommender.base import COLD_START_MODES, ColdStart, RecommenderBase


class IdLookup(RecommenderBase):
    """Titles, item search by id or title, and raw id -> index with the cold-start policy."""

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
        if not isinstance(raw_ids, np.ndarray):
            items = list(raw_ids)
            values = np.empty(len(items), dtype=object)  # element by element: an id that is a list stays one id
            for position, raw in enumerate(items):
                values[position] = raw
        else:
            values = raw_ids
        indices = id_map.indices(values, missing="none").astype(np.int64)
        known = indices >= 0
        cold = ~known
        cold[known] = ~trained[indices[known]]
        if cold.any() and cold_start == "error":
            first = int(np.argmax(cold))
            raw = values[first].item() if isinstance(values[first], np.generic) else values[first]  # not np.int64(7)
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

