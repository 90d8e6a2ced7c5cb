"""Raw rating columns: ids, ratings and timestamps checked value by value (vectorised), before id maps exist.

Every source (a text file, a parquet file, a DataFrame) becomes a pyarrow table and then ``RawRatings`` here, so
each is validated the same way. A ``Source`` names where a row came from (``u.data:500``, ``r.parquet: row 3``,
``DataFrame row 7``); it is asked only on the error path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from deepmf.data.locate import line_of_row
from deepmf.data.textfile import TextFormat
from deepmf.errors import DataError

_INT64_MAX = np.iinfo(np.int64).max
_INT32 = np.iinfo(np.int32)
# Beyond 2**53 a float64 no longer holds every integer: an id read as a float there may have lost digits.
_EXACT_FLOAT_INT = 2.0**53
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class Source(Protocol):
    """Where rows come from, for messages: ``label`` ("u.data", "DataFrame"), ``where(row)`` ("u.data:500"),
    ``position(row)`` ("line 500"), and ``literal(row, column)``: the field's text in a text file, else None."""

    label: str

    def where(self, row: int) -> str: ...

    def position(self, row: int) -> str: ...

    def literal(self, row: int, column: str) -> str | None: ...


@dataclass(frozen=True)
class TextSource:
    """A delimited text file: rows are found again by reading the file (error path only)."""

    path: Path
    fmt: TextFormat
    columns: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return str(self.path)

    def where(self, row: int) -> str:
        return f"{self.path}:{line_of_row(self.path, self.fmt, row)[0]}"

    def position(self, row: int) -> str:
        return f"line {line_of_row(self.path, self.fmt, row)[0]}"

    def literal(self, row: int, column: str) -> str | None:
        if column not in self.columns:
            return None
        fields = line_of_row(self.path, self.fmt, row)[1]
        index = self.columns.index(column)
        return fields[index] if index < len(fields) else None


@dataclass(frozen=True)
class TableSource:
    """A parquet file (no lines): rows are counted from 1."""

    path: Path

    @property
    def label(self) -> str:
        return str(self.path)

    def where(self, row: int) -> str:
        return f"{self.path}: row {row + 1}"

    def position(self, row: int) -> str:
        return f"row {row + 1}"

    def literal(self, row: int, column: str) -> str | None:
        return None


@dataclass(frozen=True)
class FrameSource:
    """A pandas DataFrame: rows are named by position (0-based, as ``iloc``), or by index label."""

    index: pd.Index
    label: str = "DataFrame"

    def _name(self, row: int) -> str:
        if isinstance(self.index, pd.RangeIndex) and self.index.start == 0 and self.index.step == 1:
            return f"row {row}"
        label = self.index[row]
        return f"row {row} (index {label.item() if isinstance(label, np.generic) else label!r})"

    def where(self, row: int) -> str:
        return f"{self.label} {self._name(row)}"

    def position(self, row: int) -> str:
        return self._name(row)

    def literal(self, row: int, column: str) -> str | None:
        return None


@dataclass(frozen=True)
class RawRatings:
    """Validated rating columns in raw ids, before id maps are built.

    ``where(row)`` names the source line or row of a row, for error messages; ``rows`` maps the rows of a
    ``take`` back to the source's. ``ratings_missing``: the source had no rating column (an implicit-feedback
    event log); ``ratings`` are then ones.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray | None
    source: Source
    rows: np.ndarray | None = field(default=None, repr=False)
    ratings_missing: bool = False

    def __len__(self) -> int:
        return len(self.ratings)

    def _row(self, row: int) -> int:
        return row if self.rows is None else int(self.rows[row])

    def where(self, row: int) -> str:
        """``file:line`` (text), ``file: row N`` (parquet) or ``DataFrame row N`` of a 0-based row."""
        return self.source.where(self._row(row))

    def position(self, row: int) -> str:
        """``line N`` (text) or ``row N`` of a 0-based row."""
        return self.source.position(self._row(row))

    def take(self, index: np.ndarray) -> RawRatings:
        ts = None if self.timestamps is None else self.timestamps[index]
        rows = np.arange(len(self))[index] if self.rows is None else self.rows[index]
        return RawRatings(self.users[index], self.items[index], self.ratings[index], ts, self.source, rows,
                          self.ratings_missing)

    def with_values(self, ratings: np.ndarray, timestamps: np.ndarray | None) -> RawRatings:
        """Same rows, other ratings and timestamps (duplicates merged by their mean)."""
        return RawRatings(self.users, self.items, ratings, timestamps, self.source, self.rows, self.ratings_missing)


# ---- column checks ------------------------------------------------------------------------------------------
def _plain(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Dictionary-encoded columns (parquet categoricals, pandas categories) as their values."""
    if pa.types.is_dictionary(column.type):
        return pc.cast(column, column.type.value_type)
    return column


def _first(mask: pa.ChunkedArray | np.ndarray) -> int:
    values = mask.to_numpy(zero_copy_only=False) if isinstance(mask, (pa.ChunkedArray, pa.Array)) else mask
    return int(np.flatnonzero(values)[0])


def _to_numpy(column: pa.ChunkedArray, dtype: type) -> np.ndarray:
    """A null-free numeric column as one numpy array of ``dtype``, filled chunk by chunk.

    ``ChunkedArray.to_numpy`` first concatenates the chunks in pyarrow memory and a dtype change copies
    again; this makes the one array that is kept.
    """
    out = np.empty(len(column), dtype=dtype)
    start = 0
    for chunk in column.chunks:
        out[start : start + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
        start += len(chunk)
    return out


def _shown(source: Source, row: int, column: str, value: object) -> str:
    """A value as the file wrote it when the source can say, else as parsed."""
    literal = source.literal(row, column)
    if literal is not None:
        return literal.strip()
    return f"{value:.17g}" if isinstance(value, float) else str(value)


def _refuse_nulls(column: pa.ChunkedArray, what: str, source: Source, name: str) -> None:
    if column.null_count:
        row = _first(column.is_null())
        literal = source.literal(row, name)
        if literal is not None and literal.strip():
            raise DataError(f"{source.where(row)}: missing {what} ({literal.strip()!r} is read as missing)")
        raise DataError(f"{source.where(row)}: empty {what}")


def _first_invalid_utf8(column: pa.ChunkedArray) -> tuple[int, bytes]:
    start = 0
    for chunk in column.chunks:
        for offset, value in enumerate(chunk.to_pylist()):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                return start + offset, value
        start += len(chunk)
    return 0, b""


def id_column(column: pa.ChunkedArray, what: str, source: Source, name: str) -> np.ndarray:
    """Raw ids as int32/int64 integers (integers, or integral floats) or as str objects (whitespace trimmed).

    Integer ids that fit in int32 (every MovieLens edition's) are kept as int32: half the memory.

    Raises:
        DataError: an empty id, an id that does not fit in int64 (or lost digits as a float), text that is not
            UTF-8, an id with control characters, a column of booleans or other non-id values.
    """
    column = _plain(column)
    kind = column.type
    _refuse_nulls(column, f"{what} id", source, name)
    if pa.types.is_integer(kind):
        bounds = pc.min_max(column)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        if high > _INT64_MAX:  # uint64 from parquet
            row = _first(pc.greater(column, pa.scalar(_INT64_MAX, kind)))
            raise DataError(f"{source.where(row)}: {what} id {high} does not fit in a 64-bit integer")
        fits = _INT32.min <= low and high <= _INT32.max
        return _to_numpy(column, np.int32 if fits else np.int64)
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        values = _to_numpy(column, np.float64)
        finite = np.isfinite(values)
        if not finite.all():
            row = int(np.flatnonzero(~finite)[0])
            raise DataError(f"{source.where(row)}: {what} id {_shown(source, row, name, values[row])} is not an id")
        if np.all(values == np.round(values)):
            large = np.abs(values) >= _EXACT_FLOAT_INT
            if large.any():
                row = int(np.flatnonzero(large)[0])
                shown = _shown(source, row, name, values[row])
                reason = (
                    "does not fit in a 64-bit integer"
                    if abs(values[row]) >= 2.0**63
                    else "is too large to be read exactly from a column of decimal numbers (write ids as whole "
                    "numbers)"
                )
                raise DataError(f"{source.where(row)}: {what} id {shown} {reason}")
            return values.astype(np.int64)
        column = pc.cast(column, pa.string())  # ids such as 1.5: kept as their text
        kind = column.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        try:
            column = pc.cast(column, pa.string())
        except pa.ArrowInvalid:
            row, value = _first_invalid_utf8(column)
            raise DataError(
                f"{source.where(row)}: {what} id {value!r} is not valid UTF-8 text; if the file is Latin-1, "
                "pass --encoding latin-1"
            ) from None
        kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        trimmed = pc.utf8_trim_whitespace(column)
        blank = pc.equal(trimmed, "")
        if pc.any(blank).as_py():
            raise DataError(f"{source.where(_first(blank))}: empty {what} id")
        control = pc.match_substring_regex(trimmed, r"[\x00-\x1f\x7f-\x9f]")
        if pc.any(control).as_py():
            row = _first(control)
            raise DataError(
                f"{source.where(row)}: {what} id {trimmed[row].as_py()!r} holds a control character "
                "(a binary or corrupted file?)"
            )
        return np.asarray(trimmed.to_numpy(zero_copy_only=False), dtype=object)
    raise DataError(f"{source.label}: the {what} id column holds {kind} values, not ids")


def rating_column(column: pa.ChunkedArray, source: Source, name: str) -> np.ndarray:
    """Ratings as float32; empty, NaN, infinite, too large and non-numeric values are refused with their line."""
    column = _plain(column)
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind):
        column = _numbers_from_text(column, source)
    elif pa.types.is_decimal(kind):
        column = pc.cast(column, pa.float64())
    elif not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
        raise DataError(f"{source.label}: the rating column holds {kind} values, not numbers")
    values = np.empty(len(column), dtype=np.float32)
    start = 0
    for chunk in column.chunks:  # chunk by chunk: no float64 copy of the whole column
        part = chunk.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)  # nulls arrive as NaN
        bad = ~(np.abs(part) <= _FLOAT32_MAX)  # NaN, infinite, or too large for float32
        if bad.any():
            row = start + int(np.flatnonzero(bad)[0])
            value = part[row - start]
            if np.isnan(value):
                problem = "missing rating (empty or NaN)"
            elif np.isinf(value):
                problem = "infinite rating"
            else:
                problem = f"rating {_shown(source, row, name, value)} is too large"
            raise DataError(f"{source.where(row)}: {problem}")
        values[start : start + len(part)] = part
        start += len(part)
    return values


def _numbers_from_text(column: pa.ChunkedArray, source: Source) -> pa.ChunkedArray:
    """A text rating column as float64 when every value is a number; else the first that is not, refused."""
    raw = column.to_numpy(zero_copy_only=False)
    if pa.types.is_binary(column.type):
        raw = np.array([None if v is None else v.decode("utf-8", "replace") for v in raw], dtype=object)
    text = pd.Series(raw, dtype=object)
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    missing = np.isnan(numbers)
    if missing.any():
        row = int(np.flatnonzero(missing)[0])
        value = text.iloc[row]
        if value is None or str(value).strip().lower() in ("", "nan"):
            raise DataError(f"{source.where(row)}: missing rating (empty or NaN)")
        raise DataError(f"{source.where(row)}: rating {str(value)!r} is not a number")
    return pa.chunked_array([pa.array(numbers)])


def time_column(column: pa.ChunkedArray, source: Source, name: str) -> np.ndarray:
    """Timestamps as int64 unix seconds from integers, floats, arrow timestamps, numbers or dates as text."""
    column = _plain(column)
    _refuse_nulls(column, "timestamp", source, name)
    kind = column.type
    if pa.types.is_integer(kind):
        if pc.max(column).as_py() > _INT64_MAX:
            row = _first(pc.greater(column, pa.scalar(_INT64_MAX, kind)))
            raise DataError(f"{source.where(row)}: timestamp does not fit in a 64-bit integer")
        return _to_numpy(column, np.int64)
    if pa.types.is_floating(kind) or pa.types.is_decimal(kind):
        return _seconds(_to_numpy(column, np.float64), source, name)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        seconds = pc.cast(pc.cast(column, pa.timestamp("s")), pa.int64())
        return seconds.to_numpy().astype(np.int64, copy=False)
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(f"{source.label}: the timestamp column holds {kind} values, not times")
    text = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object)
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, copy=True)
    dated = np.isnan(numbers)
    if dated.any():
        # Numbers first (unix seconds), then dates: "881250949" is a time, not a date string.
        parsed = pd.to_datetime(text[dated], errors="coerce", utc=True, format="mixed")
        bad = parsed.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(dated)[np.flatnonzero(bad)[0]])
            raise DataError(f"{source.where(row)}: timestamp {text.iloc[row]!r} is neither a number nor a date")
        numbers[dated] = parsed.astype("datetime64[s, UTC]").astype("int64").to_numpy(dtype=np.float64)
    return _seconds(numbers, source, name)


def _seconds(values: np.ndarray, source: Source, name: str) -> np.ndarray:
    bad = ~(np.abs(values) < 2.0**63)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{source.where(row)}: timestamp {_shown(source, row, name, values[row])} is not a time")
    return values.astype(np.int64)


def raw_from_table(
    table: pa.Table, source: Source, *, user: str, item: str, rating: str | None, time: str | None
) -> RawRatings:
    """Validate the four columns of a parsed table and return them as RawRatings (no ``rating`` column: an
    event log, whose ratings are ones and ``ratings_missing`` is set)."""
    if table.num_rows == 0:
        raise DataError(f"{source.label}: no ratings")
    users = id_column(table.column(user), "user", source, user)
    items = id_column(table.column(item), "item", source, item)
    if rating is None:
        ratings = np.ones(len(users), dtype=np.float32)
    else:
        ratings = rating_column(table.column(rating), source, rating)
    timestamps = time_column(table.column(time), source, time) if time else None
    return RawRatings(users, items, ratings, timestamps, source, ratings_missing=rating is None)
