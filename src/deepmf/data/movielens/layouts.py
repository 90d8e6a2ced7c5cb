"""The four MovieLens file layouts: which one a folder has, which edition it is, and its rating file read.

Four file layouts cover the eight editions:

* ``100k``: ``u.data`` (tab: user, item, rating, timestamp), ``u.item`` (pipe, latin-1: id, title, dates, URL,
  19 genre flags named by ``u.genre``), ``u.user`` (pipe: id, age, gender, occupation, zip).
* ``1m``: ``ratings.dat`` / ``movies.dat`` / ``users.dat`` separated by ``::`` (latin-1); ``users.dat`` holds
  age-bucket codes and occupation codes (decoded in ``side_tables`` from the edition's README).
* ``10m``: ``ratings.dat`` and ``movies.dat`` with ``::``, half-star ratings, no demographics.
* ``csv``: ``ratings.csv`` (userId, movieId, rating, timestamp) and ``movies.csv`` (movieId, title,
  genres "A|B", "(no genres listed)"), used by ml-20m, ml-25m, ml-32m, ml-latest-small and ml-latest.

The movie and user files are read by ``side_tables``.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from deepmf.data.columns import RawRatings, TextSource, raw_from_table
from deepmf.data.movielens.editions import EDITIONS
from deepmf.data.parsing import read_table
from deepmf.data.textfile import TextFormat
from deepmf.errors import DataError

_RATING_NAMES = ("user", "item", "rating", "timestamp")
_CSV_NAMES = ("userId", "movieId", "rating", "timestamp")
_RATING_TYPES = {"user": pa.int64(), "item": pa.int64(), "rating": pa.float64(), "timestamp": pa.int64()}
_RATING_LABELS = {"user": "user id", "item": "item id", "rating": "rating", "timestamp": "timestamp"}


def detect_layout(folder: Path) -> str | None:
    """File layout of a folder ("100k", "1m", "10m", "csv"), or None if it holds no MovieLens ratings."""
    if (folder / "u.data").is_file():
        return "100k"
    if (folder / "ratings.dat").is_file():
        return "1m" if (folder / "users.dat").is_file() else "10m"
    if (folder / "ratings.csv").is_file():
        return "csv"
    return None


def detect_edition(folder: Path) -> str:
    """Edition name of a MovieLens folder: its folder name when that is an official one, else by layout.

    Raises:
        DataError: the folder holds no MovieLens rating file.
    """
    layout = detect_layout(folder)
    if layout is None:
        raise DataError(f"{folder}: not a MovieLens folder (no u.data, ratings.dat or ratings.csv)")
    for ed in EDITIONS.values():
        if folder.name in (ed.folder, ed.name) and ed.layout == layout:
            return ed.name
    by_layout = {"100k": "ml-100k", "1m": "ml-1m", "10m": "ml-10m"}
    return by_layout.get(layout, "movielens-csv")


def read_rating_file(path: Path, layout: str) -> RawRatings:
    """Validated raw columns of a MovieLens rating file (u.data, u1.base, ratings.dat/.csv).

    Columns are parsed as the types the edition defines (integer ids and times, numeric ratings), so a value
    of another kind (an 'abc' id, a date where seconds belong) is an error naming its line and value.
    """
    if layout == "csv":
        fmt = TextFormat(sep=",", header=True)
        columns = dict(zip(_RATING_NAMES, _CSV_NAMES, strict=True))  # role -> column name
    else:
        fmt = TextFormat(sep="\t" if layout == "100k" else "::", header=False, names=_RATING_NAMES, quoted=False)
        columns = {name: name for name in _RATING_NAMES}
    table = read_table(
        path,
        fmt,
        column_types={columns[role]: kind for role, kind in _RATING_TYPES.items()},
        labels={columns[role]: label for role, label in _RATING_LABELS.items()},
    )
    missing = [columns[role] for role in _RATING_NAMES[:3] if columns[role] not in table.column_names]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)} of a MovieLens {path.name}")
    time = columns["timestamp"] if columns["timestamp"] in table.column_names else None
    source = TextSource(path, fmt, tuple(table.column_names))
    return raw_from_table(
        table, source, user=columns["user"], item=columns["item"], rating=columns["rating"], time=time
    )


def rating_file(folder: Path, layout: str) -> Path:
    return (
        folder / {"100k": "u.data", "1m": "ratings.dat", "10m": "ratings.dat", "csv": "ratings.csv"}[layout]
    )
