"""Typed errors. Every user mistake raises a subclass of DeepMFError; the CLI turns them into one line and exit 2.

Library code never calls ``sys.exit`` or ``input()``, and never uses ``assert`` for user errors.
"""

from __future__ import annotations

import numpy as np


class DeepMFError(Exception):
    """Base class of every error deepmf raises on purpose (bad input, bad config, bad file)."""


class DataError(DeepMFError, ValueError):
    """A ratings source is malformed, empty, out of range, missing, or has the wrong columns.

    Messages name the file and, where there is one, the 1-based line number. A ``ValueError``, so callers that
    already catch bad values catch it too.
    """


class DataFileError(DataError, OSError):
    """A ratings source cannot be opened: missing, a folder or device where a file was expected, unreadable,
    compressed in a format deepmf does not read, or a path the system refuses (too long). Also an ``OSError``."""


class DataWarning(UserWarning):
    """Data that loads but looks wrong (a few ratings far outside the rest); the CLI prints it as one line."""


class UnknownIdError(DeepMFError, KeyError):
    """A raw user or item id that the model or data set has never seen."""

    def __init__(self, kind: str, raw_id: object, message: str | None = None) -> None:
        self.kind = kind
        # Ids looked up in bulk arrive as numpy scalars, whose repr (np.int64(99)) is not the id the user wrote.
        self.raw_id = raw_id.item() if isinstance(raw_id, np.generic) else raw_id
        super().__init__(message or f"unknown {kind} id {self.raw_id!r}")

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class ConfigError(DeepMFError, ValueError):
    """A hyperparameter or option is invalid (negative learning rate, unknown optimizer, ...)."""


class UnsupportedError(ConfigError):
    """The model cannot do what was asked (e.g. fold in a new user); the message says which model and why."""


class ModelFormatError(DeepMFError):
    """A saved model or checkpoint folder is missing, truncated, tampered with, or from an incompatible version."""


class DownloadError(DeepMFError):
    """A data set could not be downloaded, verified or extracted."""


class OutputError(DeepMFError, OSError):
    """A file or folder could not be written: it exists and deepmf did not write it, it is a file or device where
    a folder is needed, or the system refused (read-only, permission denied, disk full).

    Nothing was changed. ``errno`` and ``filename`` are set when the system refused.
    """

    def __init__(self, message: str, *, errno: int | None = None, filename: str | None = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.filename = filename

    def __str__(self) -> str:  # OSError would format "[Errno n] ..." from errno/strerror
        return str(self.args[0])


class ResourceError(DeepMFError, MemoryError):
    """A model whose tables would not fit in the available memory; refused before anything is allocated."""


class DistributedError(DeepMFError):
    """A data-parallel job failed: a peer process died or hung, or the process group could not be formed.

    Not a user mistake: the CLI prints the line and exits 1; rerunning with ``--resume`` continues the run.
    """


class MissingDependencyError(ConfigError):
    """A feature needs an optional package that is not installed (the message names the pip extra)."""
