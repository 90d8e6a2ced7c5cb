"""``load(source)``: one entry point for an edition name, a MovieLens folder or a user's ratings file."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from deepmf.data.files import DUPLICATE_POLICIES, ratings_from_raw, read_user_file
from deepmf.data.implicit import implicit_from_raw, to_implicit
from deepmf.data.movielens import EDITIONS, detect_layout, load_movielens
from deepmf.data.ratings import FEEDBACKS, Ratings, RatingScale
from deepmf.errors import ConfigError, DataError

DATA_ENV = "DEEPMF_DATA"


def data_dir(explicit: str | Path | None = None) -> Path:
    """The data folder: ``explicit`` (``--dir``), else ``$DEEPMF_DATA``, else the user cache dir.

    Nothing is created here; the downloader creates the folder when it writes to it.
    """
    if explicit is not None and str(explicit) != "":
        return Path(explicit).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_cache_dir("deepmf")) / "data"


def edition_path(name: str, data_dir_: str | Path | None = None) -> Path:
    """Where edition ``name`` lives (or would live) in the data folder."""
    return data_dir(data_dir_) / EDITIONS[name].folder


def is_present(name: str, data_dir_: str | Path | None = None) -> bool:
    """Whether edition ``name`` has been extracted into the data folder."""
    return detect_layout(edition_path(name, data_dir_)) == EDITIONS[name].layout


def load(
    source: str | Path,
    *,
    data_dir: str | Path | None = None,
    user_col: str | None = None,
    item_col: str | None = None,
    rating_col: str | None = None,
    time_col: str | None = None,
    sep: str | None = None,
    duplicates: str = "error",
    scale: RatingScale | None = None,
    feedback: str = "explicit",
    positive: float | None = None,
) -> Ratings:
    """Load ratings from an edition name, a MovieLens folder, or a ratings file (CSV/TSV/parquet).

    Args:
        source: "ml-100k" (looked up in ``data_dir``), a folder (edition detected from its files), or a file.
        data_dir: the data folder for edition names (see ``data_dir()``).
        user_col, item_col, rating_col, time_col: columns of a user file (names, or 0-based positions in a
            header-less file); None uses header aliases or column order.
        sep: separator of a user file; None sniffs it.
        duplicates: duplicate (user, item) pairs: "error" (default), "last" (keep the last), "mean" (average).
        scale: the declared rating scale; ratings outside it are refused. None: the edition's, or detected.
        feedback: "explicit" (star ratings) or "implicit" (interactions; see ``deepmf.data.implicit``): a user
            file may then lack a rating column, and repeated (user, item) events become a count.
        positive: with implicit feedback, the lowest rating that counts as an interaction (None: every row).

    Returns:
        Ratings with ``name`` and ``meta["edition"]`` (None for a user file) and ``meta["path"]`` set.

    Raises:
        DataError: unknown edition, missing folder/file, malformed or invalid data.
        ConfigError: a bad option (duplicates policy, column flags given for an edition, --positive without
            implicit feedback, a duplicates policy with implicit feedback).
    """
    implicit = _check_feedback(feedback, positive, duplicates)
    if duplicates not in DUPLICATE_POLICIES:
        raise ConfigError(
            f"unknown duplicates policy {duplicates!r}; choose one of {', '.join(DUPLICATE_POLICIES)}"
        )
    text = str(source)
    columns = {"user_col": user_col, "item_col": item_col, "rating_col": rating_col, "time_col": time_col, "sep": sep}
    # Named as the CLI flags that set them (user_col is --user-col), for the refusal below.
    given = [f"--{key.replace('_', '-')}" for key, value in columns.items() if value is not None]
    if text in EDITIONS:
        folder = edition_path(text, data_dir)
        if not folder.is_dir():
            raise DataError(
                f"{text} not found in {folder.parent} (looked for {folder}); "
                f"run `deepmf download {text}` or pass --dir"
            )
        _refuse_flags(given, text)
        ratings = load_movielens(folder, name=text, duplicates=duplicates, scale=scale)
        return to_implicit(ratings, positive) if implicit else ratings
    path = Path(text).expanduser()
    if path.is_dir():
        if detect_layout(path) is None:
            raise DataError(
                f"{path}: not a MovieLens folder (no u.data, ratings.dat or ratings.csv); "
                "pass a ratings file instead"
            )
        _refuse_flags(given, str(path))
        ratings = load_movielens(path, duplicates=duplicates, scale=scale)
        return to_implicit(ratings, positive) if implicit else ratings
    if path.is_file():
        raw = read_user_file(path, **columns, rating_optional=implicit)
        if implicit:
            ratings = implicit_from_raw(raw, positive, path.name)
        else:
            ratings = ratings_from_raw(raw, duplicates=duplicates, scale=scale, name=path.name)
        ratings.meta.update({"edition": None, "path": str(path)})
        return ratings
    if text.startswith("ml-") or (os.sep not in text and "." not in text):
        raise DataError(
            f"unknown data set {text!r}: not an edition ({', '.join(EDITIONS)}) "
            "nor an existing file or folder"
        )
    raise DataError(f"{path}: no such file or folder")


def _check_feedback(feedback: str, positive: float | None, duplicates: str) -> bool:
    """Whether the feedback is implicit; ConfigError for options that do not go with the feedback asked for."""
    if feedback not in FEEDBACKS:
        raise ConfigError(f"unknown feedback {feedback!r}; choose one of {', '.join(FEEDBACKS)}")
    implicit = feedback == "implicit"
    if positive is not None and not implicit:
        raise ConfigError("--positive selects implicit positives: add --feedback implicit")
    if implicit and duplicates != "error":
        raise ConfigError("--duplicates applies to explicit ratings; implicit feedback counts repeated events")
    return implicit


def _refuse_flags(given: list[str], what: str) -> None:
    if given:
        raise ConfigError(
            f"{', '.join(given)} apply to your own ratings files, not to MovieLens data ({what})"
        )
