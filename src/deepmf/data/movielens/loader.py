"""A whole MovieLens edition loaded: its rating file as ``Ratings`` with its side tables.

Id maps always cover the *rated* users and items: items listed in the movie file but never rated are left out,
and side tables are aligned to the item map (titles "" for rated items the movie file does not list).
"""

from __future__ import annotations

from pathlib import Path

from deepmf.data.files import ratings_from_raw
from deepmf.data.movielens.editions import EDITIONS
from deepmf.data.movielens.layouts import detect_edition, detect_layout, rating_file, read_rating_file
from deepmf.data.movielens.side_tables import (
    read_items_100k,
    read_items_csv,
    read_items_dat,
    read_users_1m,
    read_users_100k,
)
from deepmf.data.ratings import Ratings, RatingScale
from deepmf.data.scale import ScaleBounds
from deepmf.errors import DataError


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
