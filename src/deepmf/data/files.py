"""Reading rating files: delimited text (any separator, ``::`` included) and parquet, fast, with clear errors.

Every loader (MovieLens editions, the user's own files, canonical split files) goes through ``read_table`` and
``RawRatings``: pyarrow parses the bytes (multi-threaded, no per-row Python); only when something is wrong
do we scan the file in Python to name the offending line. ``read_user_file`` is the user's-own-file front end:
column flags or header aliases, a sniffed separator, and positional columns for header-less files.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from deepmf.data.idmap import IdMap
from deepmf.data.ratings import Ratings, RatingScale
from deepmf.errors import ConfigError, DataError

DuplicatePolicy = Literal["error", "last", "mean"]
DUPLICATE_POLICIES: tuple[str, ...] = ("error", "last", "mean")

# Separators tried when sniffing, most specific first ("::" before ":" never arises: ":" is not a candidate).
SNIFF_SEPARATORS: tuple[str, ...] = ("::", "\t", ",", ";", "|")
# A byte never found in MovieLens text: "::" is rewritten to it because pyarrow takes one-byte delimiters.
_MULTI_SEP_STANDIN = "\x1f"
PARQUET_SUFFIXES = (".parquet", ".pq")
# CSV block: pyarrow's default (1 MiB) makes ~500 chunks of a 485 MiB file; bigger blocks also make the
# streaming reader's type inference (first block) see more rows.
_BLOCK_BYTES = 8 << 20
# Rows per slice when validating a column with float64 temporaries (8 MiB each).
_CHECK_SLICE = 1 << 20

# Header names recognised without flags (lower-cased, spaces and dashes folded to underscores).
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "user": (
        "user",
        "userid",
        "user_id",
        "uid",
        "users",
        "customer",
        "customer_id",
        "reviewer_id",
        "reviewerid",
    ),
    "item": (
        "item",
        "itemid",
        "item_id",
        "iid",
        "items",
        "movie",
        "movieid",
        "movie_id",
        "product",
        "product_id",
        "productid",
        "asin",
        "book_id",
        "isbn",
    ),
    "rating": ("rating", "ratings", "score", "stars", "rate", "overall", "book_rating"),
    "timestamp": ("timestamp", "time", "ts", "date", "datetime", "rated_at", "unix_time", "unixreviewtime"),
}


# ---- low-level table reading -------------------------------------------------------------------------------
def _fold(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def read_head(path: Path, n_bytes: int = 65536) -> str:
    """First bytes of a text file decoded leniently (BOM removed), for sniffing."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(n_bytes)
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return head.decode("utf-8", errors="replace").lstrip("\ufeff")


def sniff_separator(path: Path) -> str:
    """Guess the field separator from the first lines: the candidate found the same number of times in each.

    Raises:
        DataError: the file is empty or no candidate separator is consistent.
    """
    lines = [line for line in read_head(path).splitlines() if line.strip()][:20]
    if len(lines) > 1:
        lines = lines[:-1]  # the last line of the sample may be cut mid-way
    if not lines:
        raise DataError(f"{path}: empty file")
    for sep in SNIFF_SEPARATORS:
        counts = {line.count(sep) for line in lines}
        if len(counts) == 1 and min(counts) >= 1:
            return sep
    # Quoted fields (titles with commas) make counts differ between lines: let the csv module decide.
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=",\t;|").delimiter
    except csv.Error:
        raise DataError(f"{path}: cannot detect the column separator; pass --sep") from None


def _scan_encoding(encoding: str) -> str:
    # latin-1 decodes any byte, so line counting never fails on the "auto" (UTF-8 or latin-1) encoding.
    return "latin-1" if encoding == "auto" else encoding


def _line_of_row(path: Path, row: int, header: bool, encoding: str) -> int:
    """1-based file line of data row ``row`` (0-based), skipping header and blank lines as pyarrow does."""
    seen = -1
    with open(path, encoding=_scan_encoding(encoding), errors="replace", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            if number == 1 and header:
                continue
            if line.strip("\r\n") == "":
                continue
            seen += 1
            if seen == row:
                return number
    return number if seen >= 0 else 1


def _first_bad_field_count(
    path: Path, sep: str, expected: int, header: bool, encoding: str
) -> tuple[int, int]:
    """(line number, field count) of the first line whose number of fields differs from ``expected``."""
    with open(path, encoding=_scan_encoding(encoding), errors="replace", newline="") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.rstrip("\r\n")
            if text == "" or (number == 1 and header):
                continue
            fields = next(csv.reader([text], delimiter=sep), []) if len(sep) == 1 else text.split(sep)
            if len(fields) != expected:
                return number, len(fields)
    return 0, 0


@dataclass(frozen=True)
class TextFormat:
    """How a delimited text file is laid out.

    Attributes:
        sep: field separator (one character, or "::").
        header: whether the first line names the columns.
        names: column names to use when there is no header (None: "f0", "f1", ...).
        encoding: text encoding ("utf-8", "latin-1").
        quoted: whether fields may be quoted (False for MovieLens ``::`` files, where titles contain quotes).
    """

    sep: str
    header: bool
    names: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    quoted: bool = True


def read_table(path: Path, fmt: TextFormat, column_types: dict[str, pa.DataType] | None = None) -> pa.Table:
    """Parse a delimited file with pyarrow (multi-threaded). Malformed lines raise DataError naming the line.

    ``fmt.encoding == "auto"`` decodes UTF-8 and falls back to latin-1 (MovieLens side files vary by edition).

    Raises:
        DataError: missing/unreadable/empty file, a line with the wrong number of fields, a value pyarrow
            cannot convert.
    """
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file")
    source: str | pa.BufferReader = str(path)
    sep = fmt.sep
    if fmt.encoding.lower().replace("-", "") != "utf8" or len(sep) > 1:
        data = path.read_bytes()
        # Transcode here rather than with pyarrow's ``encoding`` option: that one runs a Python codec on
        # pyarrow's reader threads, which intermittently aborts the interpreter at exit.
        if fmt.encoding == "auto":
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                data = data.decode("latin-1").encode("utf-8")
        elif fmt.encoding.lower().replace("-", "") != "utf8":
            try:
                data = data.decode(fmt.encoding).encode("utf-8")
            except (UnicodeDecodeError, LookupError) as exc:
                raise DataError(f"{path}: cannot decode as {fmt.encoding} ({exc})") from None
        if len(sep) > 1:
            # pyarrow's delimiter is one byte: rewrite the multi-byte separator in memory (one C-speed pass).
            data = data.replace(sep.encode(), _MULTI_SEP_STANDIN.encode())
            sep = _MULTI_SEP_STANDIN
        # Hand pyarrow a buffer it owns: reading threads that hold a Python ``bytes`` object can abort the
        # interpreter at exit when torch is loaded (seen with pyarrow 26 + torch 2.13).
        sink = pa.BufferOutputStream()
        sink.write(data)
        del data
        source = sink.getvalue()
    read_options = pacsv.ReadOptions(
        column_names=None if fmt.header else (list(fmt.names) if fmt.names else None),
        autogenerate_column_names=not fmt.header and not fmt.names,
        block_size=_BLOCK_BYTES,
    )
    parse_options = pacsv.ParseOptions(delimiter=sep, quote_char='"' if fmt.quoted else False)
    convert_options = pacsv.ConvertOptions(column_types=column_types or {}, strings_can_be_null=True)
    options = {"read_options": read_options, "parse_options": parse_options, "convert_options": convert_options}

    def reopen() -> str | pa.BufferReader:
        return pa.BufferReader(source) if isinstance(source, pa.Buffer) else source

    try:
        try:
            # Block by block: the peak is about the table itself. ``read_csv`` held the whole file and its
            # parse at once (1.3 GiB of pyarrow memory for a 20M-row, 485 MiB CSV whose table is 0.6 GiB).
            table = pacsv.open_csv(reopen(), **options).read_all()
        except pa.ArrowInvalid:
            # The streaming reader fixes each column's type from the first block, so a column that changes
            # type further down (integer ratings, then a 3.5), or a malformed file, fails there. read_csv
            # infers types from the whole column and reports errors as it always did.
            table = pacsv.read_csv(reopen(), **options)
    except pa.ArrowInvalid as exc:
        raise _explain_arrow_error(path, fmt, str(exc)) from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not valid {fmt.encoding} text") from None
    finally:
        # pyarrow's allocator keeps freed parse buffers for reuse; nothing here reuses them: give them back.
        release_arrow_memory()
    if fmt.encoding == "utf-8" and any(pa.types.is_binary(t) for t in table.schema.types):
        # pyarrow types text that is not valid UTF-8 as binary: read it again as latin-1, which every byte is.
        return read_table(path, replace(fmt, encoding="auto"), column_types)
    return table


def release_arrow_memory() -> None:
    """Return the memory pyarrow's allocator keeps cached after tables are freed to the OS.

    Its pool (mimalloc) keeps freed buffers for reuse; after loading, nothing reuses them, and at 20M ratings
    they held over 1 GiB of resident memory for the rest of the process.
    """
    pa.default_memory_pool().release_unused()


def _explain_arrow_error(path: Path, fmt: TextFormat, message: str) -> DataError:
    expected = re.search(r"Expected (\d+) columns, got (\d+)", message)
    if expected:
        line, got = _first_bad_field_count(path, fmt.sep, int(expected.group(1)), fmt.header, fmt.encoding)
        if line:
            return DataError(f"{path}:{line}: expected {expected.group(1)} fields, found {got}")
    if "Empty CSV file" in message:
        return DataError(f"{path}: empty file")
    row = re.search(r"Row #(\d+)", message)
    detail = (
        message.splitlines()[0].replace("CSV parse error: ", "").replace("CSV conversion error", "bad value")
    )
    if row:
        return DataError(f"{path}:{row.group(1)}: {detail}")
    return DataError(f"{path}: {detail}")


# ---- raw ratings: validated columns of raw ids -------------------------------------------------------------
@dataclass(frozen=True)
class RawRatings:
    """Validated rating columns in raw ids, before id maps are built.

    ``line(row)`` names the file line of a row, for error messages; it is only called on the error path.
    ``ratings_missing``: the file had no rating column (an implicit-feedback event log); ``ratings`` are ones.
    """

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray | None
    path: Path
    header: bool = False
    encoding: str = "utf-8"
    is_text: bool = True
    ratings_missing: bool = False

    def __len__(self) -> int:
        return len(self.ratings)

    def where(self, row: int) -> str:
        """``file:line`` (text) or ``file: row N`` (parquet) of a 0-based data row."""
        if self.is_text:
            return f"{self.path}:{_line_of_row(self.path, row, self.header, self.encoding)}"
        return f"{self.path}: row {row + 1}"

    def position(self, row: int) -> str:
        """``line N`` (text) or ``row N`` (parquet) of a 0-based data row."""
        if self.is_text:
            return f"line {_line_of_row(self.path, row, self.header, self.encoding)}"
        return f"row {row + 1}"

    def take(self, index: np.ndarray) -> RawRatings:
        ts = None if self.timestamps is None else self.timestamps[index]
        return RawRatings(
            self.users[index],
            self.items[index],
            self.ratings[index],
            ts,
            self.path,
            self.header,
            self.encoding,
            self.is_text,
            self.ratings_missing,
        )


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


def _id_column(column: pa.ChunkedArray, what: str, where) -> np.ndarray:
    """Raw ids as int32 or int64 integers (integers, or integral floats) or as str objects; nulls are refused.

    Integer ids that fit in int32 (every MovieLens edition's) are kept as int32: half the memory.
    """
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{where(row)}: empty {what} id")
    kind = column.type
    if pa.types.is_integer(kind):
        bounds = pc.min_max(column)
        low, high = bounds["min"].as_py(), bounds["max"].as_py()
        fits = low is not None and np.iinfo(np.int32).min <= low and high <= np.iinfo(np.int32).max
        return _to_numpy(column, np.int32 if fits else np.int64)
    if pa.types.is_floating(kind):
        values = column.to_numpy()
        if np.all(np.isfinite(values)) and np.all(values == np.round(values)):
            return values.astype(np.int64)
    values = column.cast(pa.string()).to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=object)


def _rating_column(column: pa.ChunkedArray, where) -> np.ndarray:
    """Ratings as float32; empty, NaN and non-numeric values are refused with their line."""
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = np.empty(len(column), dtype=np.float32)
        start = 0
        for chunk in column.chunks:  # chunk by chunk: no float64 copy of the whole column
            part = chunk.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)  # nulls arrive as NaN
            bad = ~np.isfinite(part)
            if bad.any():
                row = start + int(np.flatnonzero(bad)[0])
                is_null = column.null_count and bool(column.is_null().to_numpy(zero_copy_only=False)[row])
                problem = "missing rating (empty or NaN)" if is_null else "infinite rating"
                raise DataError(f"{where(row)}: {problem}")
            values[start : start + len(part)] = part
            start += len(part)
        return values
    text = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object)
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers)
    row = int(np.flatnonzero(bad)[0])
    value = text.iloc[row]
    if value is None or str(value).strip() == "":
        raise DataError(f"{where(row)}: missing rating (empty or NaN)")
    raise DataError(f"{where(row)}: rating {str(value)!r} is not a number")


def _time_column(column: pa.ChunkedArray, where) -> np.ndarray:
    """Timestamps as int64 unix seconds from integers, floats, arrow timestamps or date strings."""
    if column.null_count:
        row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise DataError(f"{where(row)}: empty timestamp")
    kind = column.type
    if pa.types.is_integer(kind):
        return _to_numpy(column, np.int64)
    if pa.types.is_floating(kind):
        values = column.to_numpy()
        if not np.all(np.isfinite(values)):
            raise DataError(f"{where(int(np.flatnonzero(~np.isfinite(values))[0]))}: non-finite timestamp")
        return values.astype(np.int64)
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        seconds = pc.cast(pc.cast(column, pa.timestamp("s")), pa.int64())
        return seconds.to_numpy().astype(np.int64, copy=False)
    text = pd.Series(column.to_numpy(zero_copy_only=False), dtype=object)
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{where(row)}: timestamp {text.iloc[row]!r} is neither a number nor a date")
    return (parsed.astype("datetime64[s, UTC]").astype("int64")).to_numpy(dtype=np.int64)


def raw_from_table(
    table: pa.Table,
    path: Path,
    *,
    user: str,
    item: str,
    rating: str | None,
    time: str | None,
    header: bool,
    encoding: str = "utf-8",
    is_text: bool = True,
) -> RawRatings:
    """Validate the four columns of a parsed table and return them as RawRatings (no ``rating`` column: ones)."""
    shell = RawRatings(np.empty(0), np.empty(0), np.empty(0), None, path, header, encoding, is_text)
    where = shell.where
    if table.num_rows == 0:
        raise DataError(f"{path}: no ratings")
    users = _id_column(table.column(user), "user", where)
    items = _id_column(table.column(item), "item", where)
    ratings = _rating_column(table.column(rating), where) if rating else np.ones(len(users), dtype=np.float32)
    timestamps = _time_column(table.column(time), where) if time else None
    return RawRatings(users, items, ratings, timestamps, path, header, encoding, is_text, rating is None)


# ---- from raw ids to Ratings -------------------------------------------------------------------------------
def check_scale(raw: RawRatings, scale: RatingScale) -> None:
    """Refuse ratings outside ``scale`` or off its step grid, naming the first offending line."""
    tol = 1e-6
    # In slices: float64 temporaries of a 20M-row column would cost several hundred MiB at once.
    for begin in range(0, len(raw.ratings), _CHECK_SLICE):
        values = raw.ratings[begin : begin + _CHECK_SLICE].astype(np.float64)
        outside = (values < scale.minimum - tol) | (values > scale.maximum + tol)
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            raise DataError(
                f"{raw.where(begin + row)}: rating {values[row]:g} is outside the scale "
                f"{scale.minimum:g}..{scale.maximum:g}"
            )
        steps = (values - scale.minimum) / scale.step
        off = np.abs(steps - np.round(steps)) > 1e-4
        if off.any():
            row = int(np.flatnonzero(off)[0])
            raise DataError(
                f"{raw.where(begin + row)}: rating {values[row]:g} is not a multiple of the scale step "
                f"{scale.step:g} from {scale.minimum:g}"
            )


def _has_repeats(key: np.ndarray) -> bool:
    """Whether any value of ``key`` occurs twice: a sorted copy, compared with itself shifted by one.

    Cheaper in memory than a hash table over every row (pandas' ``duplicated`` builds one: ~0.5 GiB at 20M
    rows); the hash path then runs only when there are duplicates to resolve or report.
    """
    ordered = np.sort(key)
    return bool(np.any(ordered[1:] == ordered[:-1]))


def resolve_duplicates(
    users: np.ndarray, items: np.ndarray, raw: RawRatings, n_items: int, policy: str
) -> tuple[np.ndarray, np.ndarray, RawRatings]:
    """Apply the duplicate (user, item) policy to coded rows.

    Args:
        users, items: int32 codes of ``raw``'s rows.
        raw: the raw rows (ratings, timestamps, and line lookup for errors).
        n_items: size of the item code space (to build one int64 key per pair).
        policy: "error" (refuse, naming both lines), "last" (keep the last row of each pair), "mean" (average
            the ratings; the timestamp kept is the latest).

    Returns:
        users, items and raw rows with one row per (user, item) pair, in first-occurrence order.
    """
    if policy not in DUPLICATE_POLICIES:
        raise ConfigError(
            f"unknown duplicates policy {policy!r}; choose one of {', '.join(DUPLICATE_POLICIES)}"
        )
    key = users.astype(np.int64) * n_items + items
    if not _has_repeats(key):
        return users, items, raw
    dup = pd.Index(key).duplicated(keep="first")
    if policy == "error":
        second = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(key == key[second])[0])
        raise DataError(
            f"{raw.where(second)}: duplicate rating of user {_show(raw.users[second])} for item "
            f"{_show(raw.items[second])} (first at {raw.position(first)}); choose --duplicates last or mean"
        )
    if policy == "last":
        keep = np.flatnonzero(~pd.Index(key).duplicated(keep="last"))
        return users[keep], items[keep], raw.take(keep)
    codes, _ = pd.factorize(key)
    keep = np.flatnonzero(~dup)  # first row of each pair, in the order factorize numbered them
    mean = np.bincount(codes, weights=raw.ratings.astype(np.float64)) / np.bincount(codes)
    merged = raw.take(keep)
    ts = None
    if raw.timestamps is not None:
        ts = pd.Series(raw.timestamps).groupby(codes).max().to_numpy(dtype=np.int64)
    merged = RawRatings(
        merged.users,
        merged.items,
        mean.astype(np.float32),
        ts,
        raw.path,
        raw.header,
        raw.encoding,
        raw.is_text,
    )
    return users[keep], items[keep], merged


def ratings_from_raw(
    raw: RawRatings,
    *,
    duplicates: str = "error",
    scale: RatingScale | None = None,
    name: str = "",
    user_ids: IdMap | None = None,
    item_ids: IdMap | None = None,
) -> Ratings:
    """Build Ratings from validated raw columns: id maps (or given ones), scale check, duplicate policy.

    Args:
        raw: validated columns.
        duplicates: "error" | "last" | "mean".
        scale: the declared scale; None detects it from the values.
        name: ``Ratings.name``.
        user_ids, item_ids: existing maps to code the ids with (unknown ids raise DataError); None: build.
    """
    # The parsed table is gone by now (its columns were copied out); give pyarrow's cached buffers back before
    # the id maps' temporaries need the memory.
    release_arrow_memory()
    if scale is not None:
        check_scale(raw, scale)
    else:
        scale = RatingScale.detect(raw.ratings)
    user_ids, users, item_ids, items = code_ids(raw, user_ids, item_ids)
    users, items, raw = resolve_duplicates(users, items, raw, len(item_ids), duplicates)
    return Ratings(users, items, raw.ratings, user_ids, item_ids, scale, timestamps=raw.timestamps, name=name)


def _show(raw_id: object) -> str:
    """A raw id for messages: numbers bare, strings quoted."""
    return str(int(raw_id)) if isinstance(raw_id, (int, np.integer)) else repr(str(raw_id))


def code_ids(raw: RawRatings, user_ids: IdMap | None,
             item_ids: IdMap | None) -> tuple[IdMap, np.ndarray, IdMap, np.ndarray]:
    """(user map, user codes, item map, item codes) of ``raw``: the given maps (every id must be in them), or
    maps built from ``raw`` where None."""
    if user_ids is None:
        user_ids, users = IdMap.build(raw.users, name="user")
    else:
        users = _code_known(user_ids, raw.users, raw, "user")
    if item_ids is None:
        item_ids, items = IdMap.build(raw.items, name="item")
    else:
        items = _code_known(item_ids, raw.items, raw, "item")
    return user_ids, users, item_ids, items


def _code_known(id_map: IdMap, values: np.ndarray, raw: RawRatings, what: str) -> np.ndarray:
    """Codes of ``values`` in ``id_map``; DataError naming the line of the first id it lacks."""
    codes = id_map.indices(values, missing="none")
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise DataError(f"{raw.where(row)}: {what} id {_show(values[row])} is not in the data set")
    return codes


# ---- the user's own files ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnSpec:
    """Which source columns hold user, item, rating and (optionally) timestamp."""

    user: str
    item: str
    rating: str | None
    time: str | None


def _resolve_columns(
    names: Sequence[str],
    path: Path,
    header: bool,
    user_col: str | None,
    item_col: str | None,
    rating_col: str | None,
    time_col: str | None,
    rating_optional: bool = False,
) -> ColumnSpec:
    """Map the flags (or header aliases, or positions) onto the file's column names (``rating_optional``: a
    file without a rating column is an event log, not an error)."""
    flags = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": time_col}
    chosen: dict[str, str | None] = {}
    folded = {_fold(n): n for n in names if n}
    for role, flag in flags.items():
        if flag is not None:
            if flag in names:
                chosen[role] = flag
            elif not header and flag.isdigit() and int(flag) < len(names):
                chosen[role] = names[int(flag)]  # header-less file: a flag may be a 0-based column position
            else:
                shown = ", ".join(repr(n) for n in names if n)
                raise DataError(f"{path}: no column {flag!r} (the {role} column); columns are: {shown}")
        elif header:
            chosen[role] = next((folded[a] for a in COLUMN_ALIASES[role] if a in folded), None)
        else:
            chosen[role] = None
    if not header:
        # Positional defaults: user, item, rating[, timestamp] in the first columns not claimed by a flag.
        free = [n for n in names if n not in chosen.values()]
        for role in ("user", "item", "rating", "timestamp"):
            if chosen[role] is None and free and (role != "timestamp" or len(names) >= 4):
                chosen[role] = free.pop(0)
    required = ("user", "item") if rating_optional else ("user", "item", "rating")
    missing = [role for role in required if chosen[role] is None]
    if missing:
        shown = ", ".join(repr(n) for n in names if n)
        flags_needed = " ".join(f"--{'time' if r == 'timestamp' else r}-col" for r in missing)
        events = " (or --feedback implicit for a log of events without ratings)" if missing == ["rating"] else ""
        raise DataError(
            f"{path}: cannot tell which column is the {'/'.join(missing)} (columns: {shown}); "
            f"pass {flags_needed}{events}"
        )
    return ColumnSpec(chosen["user"], chosen["item"], chosen["rating"], chosen["timestamp"])  # type: ignore[arg-type]


def _first_line_is_header(path: Path, sep: str, any_flag: bool) -> bool:
    """A header is assumed when column flags are given or when a field of the first line is a known alias or
    not a number while ids and ratings below it are numbers."""
    if any_flag:
        return True
    lines = [line for line in read_head(path).splitlines() if line.strip()]
    first = [f.strip().strip('"') for f in lines[0].split(sep)]
    if any(_fold(f) in alias for f in first for alias in COLUMN_ALIASES.values()):
        return True
    rating_like = [f for f in first if f]
    # A header-less rating file has a numeric rating in column 3; a header line has a name there.
    return len(rating_like) >= 3 and not _is_number(first[2])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _drop_empty_trailing(table: pa.Table) -> pa.Table:
    """Remove trailing columns that are entirely empty (files written with a separator at line end)."""
    while table.num_columns > 1:
        last = table.column(table.num_columns - 1)
        named = table.column_names[-1]
        if last.null_count == table.num_rows and (named == "" or named.startswith("f")):
            table = table.drop_columns([named]) if named else table.select(range(table.num_columns - 1))
        else:
            break
    return table


def read_user_file(
    path: str | Path,
    *,
    user_col: str | None = None,
    item_col: str | None = None,
    rating_col: str | None = None,
    time_col: str | None = None,
    sep: str | None = None,
    encoding: str = "utf-8",
    rating_optional: bool = False,
) -> RawRatings:
    """Read a user's own ratings file (CSV/TSV/any separator, or parquet) into validated raw columns.

    Args:
        path: the file.
        user_col, item_col, rating_col, time_col: column names (or 0-based positions for header-less text);
            None uses header aliases (userId, movieId, rating, timestamp, ...) or the first columns in order.
        sep: field separator; None sniffs it.
        encoding: text encoding.
        rating_optional: accept a file without a rating column (implicit feedback: ``user,item[,timestamp]``
            events); its ``ratings`` are ones and ``ratings_missing`` is set.

    Raises:
        DataError: missing/empty file, missing columns, malformed lines, bad values (with file:line).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder")
    if path.suffix.lower() in PARQUET_SUFFIXES:
        try:
            table = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise DataError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
        header, is_text = True, False
    else:
        sep = sep or sniff_separator(path)
        sep = {"\\t": "\t", "tab": "\t"}.get(sep, sep)
        any_flag = any(f is not None and not f.isdigit() for f in (user_col, item_col, rating_col, time_col))
        header, is_text = _first_line_is_header(path, sep, any_flag), True
        table = _drop_empty_trailing(read_table(path, TextFormat(sep=sep, header=header, encoding=encoding)))
    cols = _resolve_columns(table.column_names, path, header, user_col, item_col, rating_col, time_col,
                            rating_optional)
    return raw_from_table(
        table,
        path,
        user=cols.user,
        item=cols.item,
        rating=cols.rating,
        time=cols.time,
        header=header,
        encoding=encoding,
        is_text=is_text,
    )
