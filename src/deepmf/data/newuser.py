"""A new user's ratings from a small CSV file of ``item,rating`` lines (``deepmf recommend --new-user FILE``)."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pandas as pd

from deepmf.data.textfile import check_file
from deepmf.errors import DataError, DataFileError


def read_item_ratings(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read ``item,rating`` lines into a DataFrame with columns item (str, as written) and rating (float).

    A first line ``item,rating`` is a header; blank lines and lines starting with ``#`` are skipped; an item id
    with a comma can be quoted. Items stay text here: the model's id map decides whether "50" is the integer 50.
    Checks of the values against a model (its scale, unknown items, duplicates) are the Recommender's.

    Raises:
        DataError: missing, empty or unreadable file (DataFileError: not a regular file), a line without
            exactly two fields, a rating that is not a number, or no rating at all (messages name the file
            and the 1-based line).
    """
    source = Path(path)
    check_file(source)  # a folder, pipe or device: one line, never a read that blocks
    try:
        text = source.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise DataFileError(f"{source}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{source}: cannot read it as UTF-8 text ({exc})") from None
    items: list[str] = []
    ratings: list[float] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = [field.strip() for field in next(csv.reader([line]))]
        if len(fields) != 2 or not fields[0]:
            raise DataError(f"{source}:{number}: expected item,rating, got {line!r}")
        if not items and fields[0].lower() == "item" and fields[1].lower() == "rating":
            continue  # header
        try:
            ratings.append(float(fields[1]))
        except ValueError:
            raise DataError(f"{source}:{number}: rating {fields[1]!r} is not a number") from None
        items.append(fields[0])
    if not items:
        raise DataError(f"{source}: no ratings (expected item,rating lines)")
    return pd.DataFrame({"item": items, "rating": ratings})
