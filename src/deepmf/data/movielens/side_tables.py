"""MovieLens side tables, per layout: titles and genres of the movies, demographics of the users.

Each table is aligned to the id map of the rated items (or users): rows for ids never rated are dropped; a
rated item the movie file does not list gets the title "" and no genre, a user missing from the user file age
-1 and empty strings.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from deepmf.data.idmap import IdMap
from deepmf.data.parsing import read_table
from deepmf.data.ratings import ItemTable, UserTable
from deepmf.data.textfile import TextFormat

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
