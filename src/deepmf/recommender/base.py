"""What every part of the Recommender shares: its attributes, scoring budgets and argument checks.

The ``Recommender`` class (``core.py``) is assembled from one mixin per concern — id lookups, predictions,
ranking, similarity, evaluation, persistence, fold-in — each in its own module. They all derive from
``RecommenderBase``, which declares the attributes they read, so each module can be read on its own.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from deepmf.data.idmap import IdMap, UserItemMaps
from deepmf.errors import ConfigError

if TYPE_CHECKING:
    from deepmf.data.ratings import ItemTable, RatingScale
    from deepmf.models.base import RatingModel
    from deepmf.models.foldin import FoldInContext
    from deepmf.recommender.results import Evaluation
    from deepmf.recommender.seen import SeenRatings
    from deepmf.training.config import TrainConfig

ColdStart = Literal["error", "bias"]
Metric = Literal["cosine", "dot"]
COLD_START_MODES = ("error", "bias")

# Scoring budget in (user, item) cells per chunk: a matrix product handles 4M cells (16 MB of scores)
# easily; a deep model's forward pass over the grid holds hidden activations per cell, so it gets a
# smaller chunk. Read as ``base.MATMUL_CELLS`` so tests can shrink them.
MATMUL_CELLS = 1 << 22
GRID_CELLS = 1 << 17
# Cells per chunk of ``recommend_all`` (every user's top-n) for matrix-product models: large enough that the
# per-chunk overhead vanishes, small enough that a chunk's scores stay well under a gigabyte.
ALL_USERS_CELLS = 1 << 25


class RecommenderBase(UserItemMaps):
    """The state every Recommender concern reads (set by ``Recommender.__init__``)."""

    model: RatingModel
    model_name: str
    feedback: str
    positive: float | None
    user_ids: IdMap
    item_ids: IdMap
    scale: RatingScale
    item_table: ItemTable | None
    seen: SeenRatings
    train_config: TrainConfig | None
    history: list[dict[str, Any]]
    model_options: dict[str, Any]
    summary: dict[str, Any]
    evaluation: Evaluation | None
    _trained_users: np.ndarray
    _trained_items: np.ndarray
    _item_count_cache: np.ndarray | None
    _fold_in_cache: FoldInContext | None
    _title_search: list[str] | None
    _vector_cache: dict[str, torch.Tensor]

    @property
    def scores_only(self) -> bool:
        """True for implicit-feedback models: ``predict`` gives ranking scores, not ratings (never clipped)."""
        return self.model.output_kind == "score"

    @property
    def device(self) -> torch.device:
        tensor = next(itertools.chain(self.model.parameters(), self.model.buffers()), None)
        return tensor.device if tensor is not None else torch.device("cpu")

    @staticmethod
    def _check_n(n: int, name: str = "n") -> None:
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"{name} must be a positive number of items, got {n}")
