"""``load(source)``: one entry point for an edition name, a MovieLens folder, a user's ratings file or a DataFrame."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from deepmf.data.files import (
    DUPLICATE_POLICIES,
    check_column_flag,
    check_separator,
    read_user_file,
)
from deepmf.data.frames import raw_from_frame
from deepmf.data.implicit import Feedback
from deepmf.data.movielens import EDITIONS, detect_layout, load_movielens
from deepmf.data.ratings import Ratings, RatingScale
from deepmf.data.scale import ScaleBounds, declared_scale
from deepmf.data.textfile import check_encoding
from deepmf.errors import ConfigError, DataError, DataFileError

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
    return user_cache_dir() / "data"


def user_cache_dir() -> Path:
    """deepmf's folder in the user's cache: platformdirs' answer, or the XDG rule where it is not installed.

    platformdirs knows every OS's convention; it is imported here, not at the top, so that a machine without it
    (a GPU box with a fixed image) can still import deepmf and train.
    """
    try:
        import platformdirs
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        return Path(base).expanduser() / "deepmf"
    return Path(platformdirs.user_cache_dir("deepmf"))


def edition_path(name: str, data_dir_: str | Path | None = None) -> Path:
    """Where edition ``name`` lives (or would live) in the data folder."""
    return data_dir(data_dir_) / EDITIONS[name].folder


def is_present(name: str, data_dir_: str | Path | None = None) -> bool:
    """Whether edition ``name`` has been extracted into the data folder."""
    return detect_layout(edition_path(name, data_dir_)) == EDITIONS[name].layout


def load(
    source: str | os.PathLike[str] | pd.DataFrame,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    user_col: str | int | None = None,
    item_col: str | int | None = None,
    rating_col: str | int | None = None,
    time_col: str | int | None = None,
    sep: str | None = None,
    duplicates: str = "error",
    scale: RatingScale | ScaleBounds | str | tuple[float, ...] | None = None,
    encoding: str | None = None,
    feedback: str = "explicit",
    positive: float | None = None,
) -> Ratings:
    """Load ratings from an edition name, a MovieLens folder, a ratings file (CSV/TSV/parquet) or a DataFrame.

    Args:
        source: "ml-100k" (looked up in ``data_dir``), a folder (edition detected from its files), a file (plain,
            gzip or bz2 text, or parquet), or a pandas DataFrame with one row per rating.
        data_dir: the data folder for edition names (see ``data_dir()``).
        user_col, item_col, rating_col, time_col: columns of a file or DataFrame (names, or 0-based positions
            in a header-less file); None uses header aliases (userId, movieId, rating, ...) or column order.
        sep: separator of a file; None sniffs it.
        duplicates: duplicate (user, item) pairs: "error" (default), "last" (keep the last), "mean" (average).
        scale: the declared rating scale: ratings outside it (or off its step) are errors naming their line.
            "1,5", "0.5,5,0.5", (1, 5), (0.5, 5, 0.5) or a RatingScale; without a step the step is detected.
            None: an edition's own scale, else inferred from the values (with a DataWarning when a few lie far
            from the rest); ``meta["scale_source"]`` says which.
        encoding: text encoding of a file (default UTF-8: other bytes are an error naming the line).
        feedback: "explicit" (star ratings) or "implicit" (interactions; see ``deepmf.data.implicit``): a file
            or DataFrame may then lack a rating column, and repeated (user, item) events become a count.
        positive: with implicit feedback, the lowest rating that counts as an interaction (None: every row).

    Returns:
        Ratings with ``name`` and ``meta["edition"]`` (None for a user file or DataFrame), ``meta["path"]``,
        ``meta["scale_source"]`` ("edition", "declared" or "inferred") and ``meta["scale_warning"]`` set.

    Raises:
        DataError: unknown edition, malformed or invalid data (``DataFileError``, also an OSError, when the
            source cannot be opened).
        ConfigError: a bad option (duplicates policy, scale, column flags given for an edition, a wrong type,
            ``positive`` without implicit feedback, a duplicates policy with implicit feedback).
    """
    if not isinstance(duplicates, str) or duplicates not in DUPLICATE_POLICIES:
        raise ConfigError(
            f"unknown duplicates policy {duplicates!r}; choose one of {', '.join(DUPLICATE_POLICIES)}"
        )
    feedback_ = Feedback.of(feedback, positive, duplicates)
    bounds = declared_scale(scale)
    try:
        if isinstance(source, pd.DataFrame):
            if sep is not None or encoding is not None:
                raise ConfigError("sep and encoding apply to files, not to a DataFrame")
            raw = raw_from_frame(source, user_col=user_col, item_col=item_col, rating_col=rating_col,
                                 time_col=time_col, rating_optional=feedback_.implicit)
            ratings = feedback_.from_raw(raw, duplicates, bounds, "DataFrame")
            ratings.meta.update({"edition": None, "path": None})
            return ratings
        return _load_path(_source_text(source), _folder(data_dir), bounds, duplicates, encoding, {
            "user_col": user_col, "item_col": item_col, "rating_col": rating_col, "time_col": time_col, "sep": sep},
            feedback_)
    except MemoryError:
        raise DataError("not enough memory to load these ratings") from None


def _source_text(source: object) -> str:
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(
            f"load() takes an edition name, a path or a pandas DataFrame, not {type(source).__name__}"
        )
    text = os.fspath(source)
    if not isinstance(text, str):
        raise ConfigError(f"load() takes paths as text, not {type(text).__name__}")
    if "\x00" in text:
        raise DataFileError(f"{text!r}: a path cannot hold a NUL character")
    return text


def _folder(value: object) -> str | os.PathLike[str] | None:
    if value is None or isinstance(value, (str, os.PathLike)):
        return value
    raise ConfigError(f"data_dir must be a path, not {type(value).__name__}")


def _load_path(
    text: str, folder: str | os.PathLike[str] | None, bounds: ScaleBounds | None, duplicates: str,
    encoding: str | None, columns: dict[str, object], feedback: Feedback,
) -> Ratings:
    """``load`` of an edition name, a folder or a file."""
    flags = {key: check_column_flag(value, key.removesuffix("_col")) for key, value in columns.items()
             if key != "sep"}
    sep = check_separator(columns["sep"])
    if encoding is not None:
        check_encoding(encoding)
    # Named as the CLI flags that set them (user_col is --user-col), for the refusal below.
    given = [f"--{key.replace('_', '-')}" for key, value in {**flags, "sep": sep, "encoding": encoding}.items()
             if value is not None]
    if text in EDITIONS:
        edition_folder = edition_path(text, folder)
        if not edition_folder.is_dir():
            raise DataError(
                f"{text} not found in {edition_folder.parent} (looked for {edition_folder}); "
                f"run `deepmf download {text}` or pass --dir"
            )
        _refuse_flags(given, text)
        return feedback.of_loaded(load_movielens(edition_folder, name=text, duplicates=duplicates, scale=bounds))
    path = Path(text).expanduser()
    try:
        is_dir, exists = path.is_dir(), path.exists()
    except OSError as exc:  # a name too long, a loop of links
        raise DataFileError(f"{path}: cannot access ({exc.strerror or exc})") from None
    if is_dir:
        if detect_layout(path) is None:
            raise DataError(
                f"{path}: not a MovieLens folder (no u.data, ratings.dat or ratings.csv); "
                "pass a ratings file instead"
            )
        _refuse_flags(given, str(path))
        return feedback.of_loaded(load_movielens(path, duplicates=duplicates, scale=bounds))
    if exists:
        raw = read_user_file(path, **flags, sep=sep, encoding=encoding or "utf-8",  # type: ignore[arg-type]
                             rating_optional=feedback.implicit)
        ratings = feedback.from_raw(raw, duplicates, bounds, path.name)
        ratings.meta.update({"edition": None, "path": str(path)})
        return ratings
    try:
        os.stat(path)
    except FileNotFoundError:
        pass
    except OSError as exc:  # a loop of links: pathlib's exists() says False without the reason
        raise DataFileError(f"{path}: cannot access ({exc.strerror or exc})") from None
    if text.startswith("ml-") or (os.sep not in text and "." not in text):
        raise DataError(
            f"unknown data set {text!r}: not an edition ({', '.join(EDITIONS)}) "
            "nor an existing file or folder"
        )
    raise DataFileError(f"{path}: no such file or folder")


def _refuse_flags(given: list[str], what: str) -> None:
    if given:
        raise ConfigError(
            f"{', '.join(given)} apply to your own ratings files, not to MovieLens data ({what})"
        )
