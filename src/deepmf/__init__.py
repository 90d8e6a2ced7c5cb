"""deepmf: matrix factorization and deep matrix factorization recommenders."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deepmf")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

from deepmf.api import fit, split
from deepmf.data.idmap import IdMap
from deepmf.data.loading import load
from deepmf.data.ratings import Ratings, RatingScale
from deepmf.errors import (
    ConfigError,
    DataError,
    DataFileError,
    DataWarning,
    DeepMFError,
    DownloadError,
    ModelFormatError,
    UnknownIdError,
)
from deepmf.recommender import Recommender

__all__ = [
    "ConfigError",
    "DataError",
    "DataFileError",
    "DataWarning",
    "DeepMFError",
    "DownloadError",
    "IdMap",
    "ModelFormatError",
    "RatingScale",
    "Ratings",
    "Recommender",
    "UnknownIdError",
    "__version__",
    "fit",
    "load",
    "split",
]
