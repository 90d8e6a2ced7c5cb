"""pandas DataFrames as a ratings source, validated exactly as a file is (``deepmf.load(df, ...)``).

The chosen columns become pyarrow arrays (zero-copy for numeric columns) and go through the same checks as a
parsed file (``deepmf.data.columns``); messages name the DataFrame row (``DataFrame row 7``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from deepmf.data.columns import FrameSource, RawRatings, raw_from_table
from deepmf.data.files import check_column_flag, resolve_columns
from deepmf.errors import DataError


def _as_arrow(series: pd.Series) -> pa.ChunkedArray:
    """One column as arrow; a column of mixed Python objects (ints and strings) becomes text, nulls kept."""
    try:
        return pa.chunked_array([pa.array(series, from_pandas=True)])
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        missing = series.isna().to_numpy()
        text = np.where(missing, None, series.astype(str).to_numpy(dtype=object))
        return pa.chunked_array([pa.array(text, type=pa.string())])


def raw_from_frame(
    frame: pd.DataFrame,
    *,
    user_col: object = None,
    item_col: object = None,
    rating_col: object = None,
    time_col: object = None,
    label: str = "DataFrame",
    aliases: bool = True,
    rating_optional: bool = False,
) -> RawRatings:
    """Validated raw columns of a DataFrame of raw ids.

    Args:
        frame: one row per rating.
        user_col, item_col, rating_col, time_col: column labels; None uses the aliases a file header may use
            (user/userId/user_id, item/movieId/item_id, rating/score/stars, timestamp/time/date, ...).
        label: how messages name the frame.
        aliases: whether aliases stand in for columns not named (False: no timestamps unless ``time_col``).
        rating_optional: a frame without a rating column is an event log (implicit feedback): ratings are ones.

    Raises:
        DataError: no rows, missing or repeated columns, empty/NaN/non-numeric values, bad ids, with the row.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DataError(f"{label}: expected a pandas DataFrame, got {type(frame).__name__}")
    if isinstance(frame.columns, pd.MultiIndex):
        raise DataError(f"{label}: columns with several levels (a MultiIndex); flatten them first")
    names = [str(column) for column in frame.columns]
    flags = [
        None if value is None else (str(value) if value in list(frame.columns) else check_column_flag(value, role))
        for value, role in ((user_col, "user"), (item_col, "item"), (rating_col, "rating"), (time_col, "timestamp"))
    ]
    cols = resolve_columns(names, label, True, *flags, flag_style="python", aliases=aliases,
                           rating_optional=rating_optional)
    if len(frame) == 0:
        raise DataError(f"{label}: no ratings")
    chosen = [c for c in (cols.user, cols.item, cols.rating, cols.time) if c is not None]
    table = pa.table({name: _as_arrow(frame.iloc[:, names.index(name)]) for name in dict.fromkeys(chosen)})
    return raw_from_table(
        table, FrameSource(frame.index, label), user=cols.user, item=cols.item, rating=cols.rating, time=cols.time
    )
