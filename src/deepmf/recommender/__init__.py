"""The Recommender: a trained model with its id maps, titles and training ratings, answering in raw ids.

One class, one concern per module: ``lookup`` (raw ids and titles -> indices), ``predictions``,
``ranking`` (top-n), ``similarity``, ``evaluate``, ``foldin`` (new users), ``persistence`` (save/load),
assembled in ``core``.
"""

from deepmf.recommender.base import COLD_START_MODES, ColdStart, Metric
from deepmf.recommender.core import Recommender
from deepmf.recommender.foldin import NewUser
from deepmf.recommender.results import Evaluation, Prediction
from deepmf.recommender.seen import SeenRatings

__all__ = [
    "COLD_START_MODES",
    "ColdStart",
    "Evaluation",
    "Metric",
    "NewUser",
    "Prediction",
    "Recommender",
    "SeenRatings",
]
