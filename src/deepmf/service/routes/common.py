"""What several routes share: the list-length parameter and turning result frames into JSON rows."""

from __future__ import annotations

from typing import Annotated, Any

import pandas as pd
from fastapi import Query

from deepmf.errors import ConfigError
from deepmf.recommender import Recommender

Count = Annotated[int, Query(ge=1, description="Number of items (at most the catalogue's size).")]
MinRatings = Annotated[int, Query(ge=0, description="Only items with at least this many training ratings.")]
Limit = Annotated[int, Query(ge=1, le=100, description="Most matches to return.")]
SearchText = Annotated[str, Query(max_length=200, description="Text to match (empty: the first matches).")]


def check_count(rec: Recommender, n: int) -> None:
    """422 for a list longer than the catalogue (a client bug, not a request to clamp)."""
    if n > rec.n_items:
        raise ConfigError(f"n must be at most the catalogue's {rec.n_items} items, got {n}")


def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A result frame as JSON-ready rows (numpy scalars become Python numbers).

    Column by column through ``tolist``: ``DataFrame.to_dict("records")`` took ~2 ms for ten rows here, more
    than the ranking itself.
    """
    columns = list(frame.columns)
    values = [frame[column].tolist() for column in columns]
    return [dict(zip(columns, row, strict=True)) for row in zip(*values, strict=True)]
