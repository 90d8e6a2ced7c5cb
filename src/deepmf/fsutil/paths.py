"""Paths as users give them, and writes the system refuses, as one-line ``OutputError``s naming the path.

Every system error of a write becomes an ``OutputError`` (read-only, permission denied, disk full, a file where
a folder should be); ``files`` and ``swap`` report theirs through ``output_error``.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from deepmf.errors import ConfigError, OutputError


def as_path(value: object, what: str = "path") -> Path:
    """``value`` as a Path; ConfigError (a ValueError) for anything but a non-empty str or os.PathLike."""
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        path = Path(value)
        if str(value) != "" and "\0" not in str(path):
            return path
    raise ConfigError(f"{what} must be a non-empty str or os.PathLike, got {type(value).__name__} {value!r}")


def output_error(exc: OSError, path: str | os.PathLike[str], action: str = "write") -> OutputError:
    """One-line OutputError for a refused write ("cannot write runs/mf: No space left on device")."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and not exc.strerror:
        reason = "a file is in the way"
    return OutputError(f"cannot {action} {path}: {reason}", errno=exc.errno, filename=os.fspath(path))


def make_folder(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and its parents) if missing; OutputError when a file is in the way or it cannot be made."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{folder} exists and is not a folder", errno=errno.EEXIST,
                          filename=str(folder)) from None
    except NotADirectoryError:
        raise OutputError(f"cannot create {folder}: part of the path is a file, not a folder",
                          errno=errno.ENOTDIR, filename=str(folder)) from None
    except OSError as exc:
        raise output_error(exc, folder, "create") from None
    return folder
