"""The user's own rating files, and the last step of every loader: raw columns -> Ratings.

``read_user_file`` reads CSV/TSV/any separator (plain, gzip or bz2) or parquet: column flags or header aliases,
a sniffed separator, positional columns for header-less files. ``ratings_from_raw`` builds Ratings from checked
raw columns: the scale (declared, or inferred with a warning for odd values), id maps, the duplicates policy.
Opening and sniffing live in ``textfile``, parsing in ``parsing``, naming lines in ``locate``, value checks in
``columns``, scale rules in ``scale``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from deepmf.data.columns import FrameSource, RawRatings, TableSource, TextSource, raw_from_table
from deepmf.data.idmap import IdMap
from deepmf.data.parsing import read_table, release_arrow_memory
from deepmf.data.ratings import Ratings, RatingScale
from deepmf.data.scale import ScaleBounds, declared_scale, inferred_scale, scale_within
from deepmf.data.textfile import (
    PARQUET_MAGIC,
    TextFormat,
    check_encoding,
    check_file,
    check_text_head,
    compression,
    head_lines,
    magic,
    sniff_separator,
)
from deepmf.errors import ConfigError, DataError

DuplicatePolicy = Literal["error", "last", "mean"]
DUPLICATE_POLICIES: tuple[str, ...] = ("error", "last", "mean")
PARQUET_SUFFIXES = (".parquet", ".pq")

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
ROLE_FLAGS = {"user": "--user-col", "item": "--item-col", "rating": "--rating-col", "timestamp": "--time-col"}


def _fold(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


# ---- from raw ids to Ratings -------------------------------------------------------------------------------
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
        python = isinstance(raw.source, FrameSource)
        choice = "duplicates='last' or 'mean'" if python else "--duplicates last or mean"
        second = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero(key == key[second])[0])
        raise DataError(
            f"{raw.where(second)}: duplicate rating of user {_show(raw.users[second])} for item "
            f"{_show(raw.items[second])} (first at {raw.position(first)}); choose {choice}"
        )
    if policy == "last":
        keep = np.flatnonzero(~pd.Index(key).duplicated(keep="last"))
        return users[keep], items[keep], raw.take(keep)
    codes, _ = pd.factorize(key)
    keep = np.flatnonzero(~dup)  # first row of each pair, in the order factorize numbered them
    mean = np.bincount(codes, weights=raw.ratings.astype(np.float64)) / np.bincount(codes)
    ts = None
    if raw.timestamps is not None:
        ts = pd.Series(raw.timestamps).groupby(codes).max().to_numpy(dtype=np.int64)
    return users[keep], items[keep], raw.take(keep).with_values(mean.astype(np.float32), ts)


def ratings_from_raw(
    raw: RawRatings,
    *,
    duplicates: str = "error",
    scale: ScaleBounds | RatingScale | None = None,
    scale_source: str = "declared",
    name: str = "",
    user_ids: IdMap | None = None,
    item_ids: IdMap | None = None,
) -> Ratings:
    """Build Ratings from validated raw columns: the scale, id maps (or given ones), the duplicate policy.

    Args:
        raw: validated columns.
        duplicates: "error" | "last" | "mean".
        scale: the declared scale (ratings outside it are refused); None infers it from the values.
        scale_source: what a given ``scale`` is, for ``meta["scale_source"]``: "declared", "edition", ...
        name: ``Ratings.name``.
        user_ids, item_ids: existing maps to code the ids with (unknown ids raise DataError); None: build.

    Returns:
        Ratings whose ``meta`` holds ``scale_source`` ("inferred" when no scale was given) and
        ``scale_warning`` (the warning about odd ratings of an inferred scale, or None).
    """
    # The parsed table is gone by now (its columns were copied out); give pyarrow's cached buffers back before
    # the id maps' temporaries need the memory.
    release_arrow_memory()
    bounds = declared_scale(scale)
    warning = None
    if bounds is not None:
        checked = scale_within(raw, bounds)
    else:
        checked, warning = inferred_scale(raw)
        scale_source = "inferred"
    user_ids, users, item_ids, items = code_ids(raw, user_ids, item_ids)
    users, items, raw = resolve_duplicates(users, items, raw, len(item_ids), duplicates)
    return Ratings(
        users,
        items,
        raw.ratings,
        user_ids,
        item_ids,
        checked,
        timestamps=raw.timestamps,
        name=name,
        meta={"scale_source": scale_source, "scale_warning": warning},
    )


def _show(raw_id: object) -> str:
    """A raw id for messages: numbers bare, strings quoted."""
    return str(int(raw_id)) if isinstance(raw_id, (int, np.integer)) else repr(str(raw_id))


def code_ids(
    raw: RawRatings, user_ids: IdMap | None, item_ids: IdMap | None
) -> tuple[IdMap, np.ndarray, IdMap, np.ndarray]:
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
    """Codes of ``values`` in ``id_map``; DataError naming the row of the first id it lacks."""
    codes = id_map.indices(values, missing="none")
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise DataError(f"{raw.where(row)}: {what} id {_show(values[row])} is not in the data set")
    return codes


# ---- which column is which ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnSpec:
    """Which source columns hold user, item, rating and (optionally) timestamp."""

    user: str
    item: str
    rating: str | None
    time: str | None


def check_column_flag(value: object, role: str) -> str | None:
    """A column flag as text: a name, or a 0-based position given as an int. ConfigError for anything else."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
        return str(int(value))
    raise ConfigError(f"the {role} column must be a name or a 0-based position, not {value!r}")


def resolve_columns(
    names: Sequence[str],
    where: str,
    header: bool,
    user_col: str | None,
    item_col: str | None,
    rating_col: str | None,
    time_col: str | None,
    flag_style: Literal["cli", "python"] = "cli",
    aliases: bool = True,
    rating_optional: bool = False,
) -> ColumnSpec:
    """Map the flags (or header aliases, or positions) onto the source's column names.

    Args:
        names: the source's columns.
        where: the source, for messages ("r.csv", "DataFrame").
        header: whether the names come from a header (else "f0", "f1", ... and flags may be positions).
        user_col, item_col, rating_col, time_col: the flags; None: aliases (with a header) or positions.
        flag_style: how messages name the flags ("--user-col" or "user_col=").
        aliases: whether header aliases stand in for missing flags (False: only the columns named).
        rating_optional: a source without a rating column is an event log (implicit feedback), not an error.
    """
    flags = {"user": user_col, "item": item_col, "rating": rating_col, "timestamp": time_col}
    shown = ", ".join(repr(n) for n in names if n)
    chosen: dict[str, str | None] = {}
    folded = {_fold(n): n for n in names if n}
    for role, flag in flags.items():
        if flag is not None:
            if flag in names:
                chosen[role] = flag
            elif not header and flag.isdigit():
                if int(flag) >= len(names):
                    raise DataError(
                        f"{where}: no column at position {flag} (the {role} column); the file has {len(names)} "
                        f"columns, positions 0..{len(names) - 1}"
                    )
                chosen[role] = names[int(flag)]  # header-less file: a flag may be a 0-based column position
            else:
                raise DataError(f"{where}: no column {flag!r} (the {role} column); columns are: {shown}")
        elif header and aliases:
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
        if flag_style == "cli":
            needed = " ".join(ROLE_FLAGS[r] for r in missing)
            events = " (or --feedback implicit for a log of events without ratings)"
        else:
            needed = ", ".join(f"{'time' if r == 'timestamp' else r}_col=..." for r in missing)
            events = " (or feedback='implicit' for a log of events without ratings)"
        raise DataError(f"{where}: cannot tell which column is the {'/'.join(missing)} (columns: {shown}); "
                        f"pass {needed}{events if missing == ['rating'] else ''}")
    used = [name for name in chosen.values() if name is not None]
    for name in used:
        if used.count(name) > 1:
            roles = " and ".join(role for role, value in chosen.items() if value == name)
            raise DataError(f"{where}: column {name!r} is given as the {roles} column")
        if list(names).count(name) > 1:
            raise DataError(f"{where}: column {name!r} appears {list(names).count(name)} times")
    return ColumnSpec(chosen["user"], chosen["item"], chosen["rating"], chosen["timestamp"])  # type: ignore[arg-type]


def _first_line_is_header(path: Path, sep: str, any_flag: bool, encoding: str) -> bool:
    """A header is assumed when column flags are given or when a field of the first line is a known alias or
    not a number while ids and ratings below it are numbers."""
    if any_flag:
        return True
    lines = head_lines(path, encoding)
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


def check_separator(sep: object) -> str | None:
    """``--sep`` as pyarrow needs it ("\\t" and "tab" name a tab); ConfigError for what cannot separate fields."""
    if sep is None:
        return None
    if not isinstance(sep, str) or sep == "":
        raise ConfigError(f"a separator is a non-empty string such as ',' or '\\t', not {sep!r}")
    sep = {"\\t": "\t", "tab": "\t"}.get(sep, sep)
    if any(c in sep for c in "\r\n\"") or (len(sep) > 1 and sep.strip() == ""):
        raise ConfigError(f"{sep!r} cannot separate fields (no quotes, line ends or runs of spaces)")
    return sep


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable parquet file ({str(exc).splitlines()[0]})") from None
    finally:
        release_arrow_memory()


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
    """Read a user's own ratings file (CSV/TSV/any separator, plain, gzip or bz2; or parquet) into validated
    raw columns.

    Args:
        path: the file.
        user_col, item_col, rating_col, time_col: column names (or 0-based positions for header-less text);
            None uses header aliases (userId, movieId, rating, timestamp, ...) or the first columns in order.
        sep: field separator; None sniffs it.
        encoding: text encoding (UTF-8 by default: text that is not UTF-8 is an error naming its line).
        rating_optional: accept a file without a rating column (implicit feedback: ``user,item[,timestamp]``
            events); its ``ratings`` are ones and ``ratings_missing`` is set.

    Raises:
        DataFileError: missing file, a folder or device, an archive or unreadable compression.
        DataError: empty file, missing columns, malformed lines, bad values (with file:line).
        ConfigError: a flag that cannot be right (a separator of quotes, an unknown encoding).
    """
    path = Path(path)
    flags = [check_column_flag(value, role)
             for value, role in ((user_col, "user"), (item_col, "item"), (rating_col, "rating"),
                                 (time_col, "timestamp"))]
    sep = check_separator(sep)
    encoding = check_encoding(encoding)
    check_file(path)
    if path.suffix.lower() in PARQUET_SUFFIXES or magic(path).startswith(PARQUET_MAGIC):
        table = _read_parquet(path)
        cols = resolve_columns(table.column_names, str(path), True, *flags, rating_optional=rating_optional)
        source: TextSource | TableSource = TableSource(path)
    else:
        compression(path)  # refuses archives and unsupported compressions before any sniffing
        check_text_head(path, encoding)
        sep = sep or sniff_separator(path, encoding)
        any_flag = any(f is not None and not f.isdigit() for f in flags)
        header = _first_line_is_header(path, sep, any_flag, encoding)
        fmt = TextFormat(sep=sep, header=header, encoding=encoding)
        table = _drop_empty_trailing(read_table(path, fmt))
        cols = resolve_columns(table.column_names, str(path), header, *flags, rating_optional=rating_optional)
        source = TextSource(path, fmt, tuple(table.column_names))
    return raw_from_table(table, source, user=cols.user, item=cols.item, rating=cols.rating, time=cols.time)

