"""Recommender: a trained model with its id maps, titles and training ratings, answering in raw ids.

This is the only place raw ids meet indices at prediction time. Every question is answered in batches: all
items of a user are scored at once (one matrix product for MF, batched forward passes for deep models), many
users are scored in chunks so the full user x item table never exists, and top-k uses ``torch.topk``.

Ids that are not in the model's maps, and ids that are in the maps but had no training rating (the model
never learned them), are *cold*. By default a cold id raises ``UnknownIdError``; with ``cold_start="bias"``
the answer falls back to the global mean plus the known side's bias and says so. Recommendations and similar
items are drawn only from items that had training ratings, for the same reason: an untrained item's vector is
noise.

Implicit feedback: models trained on interactions (``feedback == "implicit"``; BPR, iALS, EASE, popularity,
deep models with loss bce) answer with scores that only order items (``scores_only``): nothing clips them,
``evaluate`` reports ranking metrics only (every held-out interaction is relevant), and cold ids fall back to
item popularity instead of a mean rating.

Time: a model that uses the day of a rating (``model.uses_time``) is scored at the ratings' timestamps by
``evaluate`` (when the held-out ratings have them) and by ``predict_many`` / ``predict_frame`` when given
``timestamps``. Ranking (``recommend``, ``recommend_many``, the ranking metrics) is time-free: a list of items
is for no particular day, and such a model ranks with each user's usual days folded in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from deepmf.data.idmap import IdMap
from deepmf.data.ratings import ItemTable, Ratings, RatingScale
from deepmf.errors import ConfigError
from deepmf.recommender.evaluate import Evaluating
from deepmf.recommender.foldin import FoldIn
from deepmf.recommender.persistence import Persistence
from deepmf.recommender.results import Evaluation
from deepmf.recommender.seen import SeenRatings
from deepmf.recommender.similarity import Similarity

if TYPE_CHECKING:
    import torch

    from deepmf.models.base import RatingModel
    from deepmf.models.foldin import FoldInContext
    from deepmf.training.config import TrainConfig
    from deepmf.training.fit import TrainedModel


class Recommender(Similarity, Evaluating, FoldIn, Persistence):
    """A trained rating model that answers in raw ids and titles.

    Args:
        model: the trained RatingModel (put in eval mode here).
        model_name: its registry name.
        user_ids: id map of the model's user rows.
        item_ids: id map of the model's item rows.
        scale: rating scale; predictions are clipped to it.
        item_table: titles and genres, or None.
        seen: the training ratings (CSR), for excluding seen items and detecting untrained ids.
        train_config: how the model was trained (kept in the saved folder).
        history: per-epoch records (dicts) of training.
        model_options: the options the model was created with.
        summary: training summary (epochs run, seconds, engine, ...).
        evaluation: test-set evaluation kept with the model (plots use it).
        feedback: "explicit" or "implicit", the kind of data the model learned (saved with it).
        positive: for implicit feedback, the lowest rating that counted as an interaction (None: every row).
    """

    def __init__(
        self,
        model: RatingModel,
        model_name: str,
        user_ids: IdMap,
        item_ids: IdMap,
        scale: RatingScale,
        item_table: ItemTable | None,
        seen: SeenRatings,
        train_config: TrainConfig | None = None,
        history: list[dict[str, Any]] | None = None,
        *,
        model_options: dict[str, Any] | None = None,
        summary: dict[str, Any] | None = None,
        evaluation: Evaluation | None = None,
        feedback: str = "explicit",
        positive: float | None = None,
    ) -> None:
        if seen.n_users != len(user_ids) or seen.n_items != len(item_ids):
            raise ConfigError("training ratings and id maps disagree on the number of users or items")
        self.model = model.eval()
        self.model_name = model_name
        self.feedback = feedback
        self.positive = positive
        self.user_ids = user_ids
        self.item_ids = item_ids
        self.scale = scale
        self.item_table = item_table
        self.seen = seen
        self.train_config = train_config
        self.history = history or []
        self.model_options = model_options or {}
        self.summary = summary or {}
        self.evaluation = evaluation
        self._trained_users = seen.user_counts() > 0
        self._trained_items = seen.item_counts() > 0
        self._fallback: tuple[float, np.ndarray, np.ndarray] | None = None
        self._item_count_cache: np.ndarray | None = None
        self._fold_in_cache: FoldInContext | None = None
        self._title_search: list[str] | None = None
        self._vector_cache: dict[str, torch.Tensor] = {}

    def __repr__(self) -> str:
        """One line: model, sizes, how it was trained and its test RMSE if one is kept (not the weights)."""
        trained = f"{len(self.seen.items):,} training ratings"
        engine = self.summary.get("engine")
        metrics = self.evaluation.metrics if self.evaluation is not None else {}
        return (f"Recommender({self.model_name!r}: {self.n_users:,} users, {self.n_items:,} items, {trained}"
                + (f", engine {engine}" if engine else "")
                + (f", test RMSE {metrics['rmse']:.4f}" if metrics.get("rmse") is not None else "") + ")")

    # ---- construction --------------------------------------------------------------------------------------
    @classmethod
    def from_trained(cls, trained: TrainedModel, data: Ratings, train: Ratings) -> Recommender:
        """Wrap the output of ``deepmf.training.fit.train_model``.

        Args:
            trained: the trained model and its training record.
            data: the full data set (id maps, scale, titles).
            train: the ratings the model was trained on (they are "seen").
        """
        result = trained.result.to_dict()
        history = result.pop("history", [])
        return cls(
            trained.model,
            trained.model_name,
            data.user_ids,
            data.item_ids,
            data.scale,
            data.item_table,
            SeenRatings.from_ratings(train),
            trained.train_config,
            history,
            model_options=dict(trained.model_options),
            summary=result,
            feedback=data.feedback,
            positive=data.meta.get("positive") if data.feedback == "implicit" else None,
        )
