"""Typed errors. Every user mistake raises a subclass of DeepMFError; the CLI turns them into one line and exit 2.

Library code never calls ``sys.exit`` or ``input()``, and never uses ``assert`` for user errors.
"""

from __future__ import annotations

import numpy as np


class DeepMFError(Exception):
    """Base class of every error deepmf raises on purpose (bad input, bad config, bad file)."""


class DataError(DeepMFError):
    """A ratings source is malformed, empty, out of range, missing, or has the wrong columns.

    Messages name the file and, where there is one, the 1-based line number.
    """


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


class ModelFormatError(DeepMFError):
    """A saved model or checkpoint folder is missing, truncated, tampered with, or from an incompatible version."""


class DownloadError(DeepMFError):
    """A data set could not be downloaded, verified or extracted."""
