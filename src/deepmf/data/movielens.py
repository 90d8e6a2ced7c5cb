"""Every MovieLens edition: where its official zip lives, how to verify it, how to read its files.

Four file layouts cover the eight editions:

* ``100k``: ``u.data`` (tab: user, item, rating, timestamp), ``u.item`` (pipe, latin-1: id, title, dates, URL,
  19 genre flags named by ``u.genre``), ``u.user`` (pipe: id, age, gender, occupation, zip).
* ``1m``: ``ratings.dat`` / ``movies.dat`` / ``users.dat`` separated by ``::`` (latin-1); ``users.dat`` holds
  age-bucket codes and occupation codes (decoded below from the edition's README).
* ``10m``: ``ratings.dat`` and ``movies.dat`` with ``::``, half-star ratings, no demographics.
* ``csv``: ``ratings.csv`` (userId, movieId, rating, timestamp) and ``movies.csv`` (movieId, title,
  genres "A|B", "(no genres listed)"), used by ml-20m, ml-25m, ml-32m, ml-latest-small and ml-latest.

Id maps always cover the *rated* users and items: items listed in the movie file but never rated are left out,
and side tables are aligned to the item map (titles "" for rated items the movie file does not list).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from deepmf.data.columns import RawRatings, TextSource, raw_from_table
from deepmf.data.files import ratings_from_raw
from deepmf.data.idmap import IdMap
from deepmf.data.parsing import read_table
from deepmf.data.ratings import ItemTable, Ratings, RatingScale, UserTable
from deepmf.data.scale import ScaleBounds
from deepmf.data.textfile import TextFormat
from deepmf.errors import DataError

BASE_URL = "https://files.grouplens.org/datasets/movielens"

STARS = RatingScale(1.0, 5.0, 1.0)
HALF_STARS = RatingScale(0.5, 5.0, 0.5)

# Checksums: sha256 and zip sizes come from TensorFlow Datasets' pinned list
# (tensorflow/datasets, tensorflow_datasets/url_checksums/movielens.txt); md5s are GroupLens' own published
# ``<zip>.md5`` values, as pinned by e.g. eli-osherovich/papers_with_code datasets/movielens/dl_config.py.
# ml-32m's sha256 and size come from a single third-party source (a public project's ML-32M data manifest,
# hashed by its authors from the official zip); a mismatch is reported as such, never silently accepted.
# ml-latest has no checksum (GroupLens re-releases it over time): the downloader marks it unverified.
_TFDS = "sha256 from tensorflow_datasets/url_checksums/movielens.txt"
_GL_MD5 = "md5 published by GroupLens (<zip>.md5)"
_ML32M = "sha256 from a third-party ML-32M data manifest (single source)"


@dataclass(frozen=True)
class Edition:
    """One MovieLens release.

    Attributes:
        name: the name users type ("ml-100k").
        folder: the folder its zip extracts to ("ml-10M100K" for ml-10m).
        layout: file layout: "100k", "1m", "10m" or "csv".
        n_ratings, n_users, n_items: official counts (rated items), None if unpublished or changing.
        scale: declared rating scale.
        sha256, md5: checksum of the zip (sha256 preferred), None where unknown.
        size: zip size in bytes, None where unknown.
        checksum_source: where the checksum came from.
        description: one line for ``deepmf datasets``.
    """

    name: str
    folder: str
    layout: str
    n_ratings: int | None
    n_users: int | None
    n_items: int | None
    scale: RatingScale
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    checksum_source: str = ""
    description: str = ""

    @property
    def url(self) -> str:
        """Official GroupLens download URL of the zip."""
        return f"{BASE_URL}/{self.name}.zip"

    @property
    def zip_name(self) -> str:
        return f"{self.name}.zip"


EDITIONS: dict[str, Edition] = {
    e.name: e
    for e in (
        Edition(
            "ml-100k",
            "ml-100k",
            "100k",
            100_000,
            943,
            1_682,
            STARS,
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            md5="0e33842e24a9c977be4e0107933c0723",
            size=4_924_029,
            checksum_source=_TFDS,
            description="1998; demographics, 19 genres, canonical u1..u5/ua/ub splits",
        ),
        Edition(
            "ml-1m",
            "ml-1m",
            "1m",
            1_000_209,
            6_040,
            3_706,
            STARS,
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            md5="c4d9eecfca2ab87c1945afe126590906",
            size=5_917_549,
            checksum_source=_TFDS,
            description="2003; demographics (age buckets, occupation codes), 18 genres",
        ),
        Edition(
            "ml-10m",
            "ml-10M100K",
            "10m",
            10_000_054,
            69_878,
            10_677,
            HALF_STARS,
            md5="ce571fd55effeba0271552578f2648bd",
            checksum_source=_GL_MD5,
            description="2009; half-star ratings, '::' separated",
        ),
        Edition(
            "ml-20m",
            "ml-20m",
            "csv",
            20_000_263,
            138_493,
            26_744,
            HALF_STARS,
            sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            md5="cd245b17a1ae2cc31bb14903e1204af3",
            size=198_702_078,
            checksum_source=_TFDS,
            description="2015; CSV, tag genome",
        ),
        Edition(
            "ml-25m",
            "ml-25m",
            "csv",
            25_000_095,
            162_541,
            59_047,
            HALF_STARS,
            sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
            md5="6b51fb2759a8657d3bfcbfc42b592ada",
            size=261_978_986,
            checksum_source=_TFDS,
            description="2019; CSV, tag genome",
        ),
        Edition(
            "ml-32m",
            "ml-32m",
            "csv",
            32_000_204,
            200_948,
            None,  # its README counts the 87,585 movies listed, not how many are rated
            HALF_STARS,
            sha256="e4a68655d7386b8f95f2f2424b2ff975dfdd15ffd59e0d864a14dca43e99d6ee",
            size=238_950_008,
            checksum_source=_ML32M,
            description="2023; CSV",
        ),
        Edition(
            "ml-latest-small",
            "ml-latest-small",
            "csv",
            100_836,
            610,
            9_724,
            HALF_STARS,
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            size=978_202,
            checksum_source=_TFDS,
            description="small CSV edition for education (2018 snapshot)",
        ),
        Edition(
            "ml-latest",
            "ml-latest",
            "csv",
            None,
            None,
            None,
            HALF_STARS,
            description="full latest CSV edition; re-released over time (checksum unverified)",
        ),
    )
}

# ml-1m users.dat codes, from the edition's README.
ML1M_AGE_BUCKETS: dict[int, str] = {
    1: "Under 18",
    18: "18-24",
    25: "25-34",
    35: "35-44",
    45: "45-49",
    50: "50-55",
    56: "56+",
}
ML1M_OCCUPATIONS: tuple[str, ...] = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
NO_GENRES = "(no genres listed)"

_RATING_NAMES = ("user", "item", "rating", "timestamp")
_CSV_NAMES = ("userId", "movieId", "rating", "timestamp")
_RATING_TYPES = {"user": pa.int64(), "item": pa.int64(), "rating": pa.float64(), "timestamp": pa.int64()}
_RATING_LABELS = {"user": "user id", "item": "item id", "rating": "rating", "timestamp": "timestamp"}


def edition(name: str) -> Edition:
    """The edition called ``name``. Raises DataError listing the known names."""
    try:
        return EDITIONS[name]
    except KeyError:
        raise DataError(f"unknown MovieLens edition {name!r}; known: {', '.join(EDITIONS)}") from None


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


# ---- rating files ------------------------------------------------------------------------------------------
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


# ---- side tables -------------------------------------------------------------------------------------------
def _align(id_map: IdMap, raw_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows of the side file whose id is in the map, their indices in the map)."""
    codes = id_map.indices(raw_ids, missing="none")
    rows = np.flatnonzero(codes >= 0)
    return rows, codes[rows]


def _titles(id_map: IdMap, ids: np.ndarray, titles: np.ndarray) -> np.ndarray:
    rows, codes = _align(id_map, ids)
    out = np.full(len(id_map), "", dtype=object)
    out[codes] = titles[rows]
    return out


def _genres_from_strings(
    id_map: IdMap, ids: np.ndarray, genres: pd.Series
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Multi-hot genres from "A|B" strings; "(no genres listed)" gives no genre."""
    dummies = genres.fillna("").str.get_dummies(sep="|")
    dummies = dummies.drop(columns=[c for c in (NO_GENRES, "") if c in dummies.columns])
    rows, codes = _align(id_map, ids)
    out = np.zeros((len(id_map), dummies.shape[1]), dtype=bool)
    out[codes] = dummies.to_numpy(dtype=bool)[rows]
    return out, tuple(str(c) for c in dummies.columns)


def _column(table: pa.Table, index: int) -> np.ndarray:
    return table.column(index).to_numpy(zero_copy_only=False)


def read_items_100k(folder: Path, item_ids: IdMap) -> ItemTable | None:
    """``u.item`` titles and the 19 genre flags, named by ``u.genre``."""
    path = folder / "u.item"
    if not path.is_file():
        return None
    table = read_table(
        path,
        TextFormat(sep="|", header=False, encoding="latin-1", quoted=False),
        column_types={"f0": pa.int64()},
    )
    ids = _column(table, 0).astype(np.int64)
    titles = np.asarray(_column(table, 1), dtype=object)
    flags = np.column_stack([_column(table, c) for c in range(table.num_columns - 19, table.num_columns)])
    genre_names: tuple[str, ...] = tuple(f"genre{i}" for i in range(19))
    genre_path = folder / "u.genre"
    if genre_path.is_file():
        pairs = [
            line.split("|") for line in genre_path.read_text(encoding="latin-1").splitlines() if "|" in line
        ]
        named = {int(idx): name for name, idx in pairs}
        genre_names = tuple(named.get(i, f"genre{i}") for i in range(19))
    rows, codes = _align(item_ids, ids)
    genres = np.zeros((len(item_ids), 19), dtype=bool)
    genres[codes] = flags[rows].astype(bool)
    return ItemTable(_titles(item_ids, ids, titles), genres, genre_names)


def read_users_100k(folder: Path, user_ids: IdMap) -> UserTable | None:
    """``u.user``: age in years, gender, occupation name, zip code."""
    path = folder / "u.user"
    if not path.is_file():
        return None
    table = read_table(
        path,
        TextFormat(
            sep="|",
            header=False,
            names=("id", "age", "gender", "occupation", "zip"),
            encoding="latin-1",
            quoted=False,
        ),
        column_types={"zip": pa.string(), "gender": pa.string(), "occupation": pa.string()},
    )
    return _user_table(user_ids, table)


def read_users_1m(folder: Path, user_ids: IdMap) -> UserTable | None:
    """``users.dat``: gender, age-bucket code (ML1M_AGE_BUCKETS), occupation code decoded to its name, zip."""
    path = folder / "users.dat"
    if not path.is_file():
        return None
    table = read_table(
        path,
        TextFormat(
            sep="::",
            header=False,
            names=("id", "gender", "age", "occupation", "zip"),
            encoding="latin-1",
            quoted=False,
        ),
        column_types={"zip": pa.string(), "gender": pa.string(), "occupation": pa.int64()},
    )
    codes = table.column("occupation").to_numpy()
    names = np.array(
        [ML1M_OCCUPATIONS[c] if 0 <= c < len(ML1M_OCCUPATIONS) else str(c) for c in codes], dtype=object
    )
    return _user_table(
        user_ids,
        table.set_column(
            table.schema.get_field_index("occupation"), "occupation", pa.array(names, type=pa.string())
        ),
    )


def _user_table(user_ids: IdMap, table: pa.Table) -> UserTable:
    rows, codes = _align(user_ids, table.column("id").to_numpy().astype(np.int64))
    n = len(user_ids)
    age = np.full(n, -1, dtype=np.int64)
    age[codes] = table.column("age").to_numpy()[rows]
    columns = {}
    for name in ("gender", "occupation", "zip"):
        out = np.full(n, "", dtype=object)
        out[codes] = np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=object)[rows]
        columns[name] = out
    return UserTable(age, columns["gender"], columns["occupation"], columns["zip"])


def read_items_dat(folder: Path, item_ids: IdMap) -> ItemTable | None:
    """``movies.dat`` (ml-1m, ml-10m): MovieID::Title::Genres."""
    path = folder / "movies.dat"
    if not path.is_file():
        return None
    table = read_table(
        path,
        TextFormat(sep="::", header=False, names=("id", "title", "genres"), encoding="auto", quoted=False),
        column_types={"id": pa.int64(), "title": pa.string(), "genres": pa.string()},
    )
    return _item_table(item_ids, table)


def read_items_csv(folder: Path, item_ids: IdMap) -> ItemTable | None:
    """``movies.csv`` (CSV editions): movieId,title,genres with quoted titles."""
    path = folder / "movies.csv"
    if not path.is_file():
        return None
    table = read_table(
        path,
        TextFormat(sep=",", header=True, encoding="auto"),
        column_types={"title": pa.string(), "genres": pa.string()},
    )
    return _item_table(item_ids, table.rename_columns(["id", *table.column_names[1:]]))


def _item_table(item_ids: IdMap, table: pa.Table) -> ItemTable:
    ids = table.column("id").to_numpy().astype(np.int64)
    titles = np.asarray(table.column("title").to_numpy(zero_copy_only=False), dtype=object)
    genres, names = _genres_from_strings(
        item_ids, ids, pd.Series(table.column("genres").to_numpy(zero_copy_only=False))
    )
    return ItemTable(_titles(item_ids, ids, titles), genres, names)


# ---- whole editions ----------------------------------------------------------------------------------------
def load_movielens(
    folder: str | Path,
    *,
    name: str | None = None,
    duplicates: str = "error",
    scale: RatingScale | ScaleBounds | None = None,
) -> Ratings:
    """Load a MovieLens folder (layout detected) with its side tables.

    Args:
        folder: the extracted edition folder.
        name: edition name; None detects it.
        duplicates: duplicate (user, item) policy, "error" | "last" | "mean".
        scale: declared rating scale; None uses the edition's (a rating outside it is an error naming its line).

    Raises:
        DataError: missing folder, not a MovieLens folder, malformed files.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    layout = detect_layout(folder)
    if layout is None:
        raise DataError(f"{folder}: not a MovieLens folder (no u.data, ratings.dat or ratings.csv)")
    name = name or detect_edition(folder)
    official = EDITIONS.get(name)
    source = "declared" if scale is not None else "edition"
    scale = scale if scale is not None else (official.scale if official else None)
    raw = read_rating_file(rating_file(folder, layout), layout)
    ratings = ratings_from_raw(raw, duplicates=duplicates, scale=scale, scale_source=source, name=name)
    item_reader = {
        "100k": read_items_100k,
        "1m": read_items_dat,
        "10m": read_items_dat,
        "csv": read_items_csv,
    }
    user_reader = {"100k": read_users_100k, "1m": read_users_1m}
    item_table = item_reader[layout](folder, ratings.item_ids)
    user_table = user_reader[layout](folder, ratings.user_ids) if layout in user_reader else None
    result = Ratings(
        ratings.users,
        ratings.items,
        ratings.ratings,
        ratings.user_ids,
        ratings.item_ids,
        ratings.scale,
        timestamps=ratings.timestamps,
        item_table=item_table,
        user_table=user_table,
        name=name,
        meta={**ratings.meta, "edition": name, "path": str(folder), "layout": layout},
    )
    return result
