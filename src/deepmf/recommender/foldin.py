"""New users without retraining: fold a user's ratings into the trained model and answer for him.

The model class says how (``RatingModel.fold_in``: closed form for MF, SVD++, I-AutoRec and each Bayesian MF
sample, gradient steps on fresh user rows for deep MF and NeuMF, each member for a blend); this mixin checks
the ratings, maps raw ids, gives the model its training run's regularization (``FoldInContext``) and ranks
or predicts with the one-user model it returns. Items the new user rated are never recommended back to him.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from deepmf.errors import DataError
from deepmf.models.foldin import FoldInContext
from deepmf.recommender.ranking import Ranking

if TYPE_CHECKING:
    from deepmf.models.base import RatingModel
    from deepmf.training.config import TrainConfig

# Training ratings a fold-in context carries for models that estimate a noise level from them (Bayesian MF):
# enough for a variance to about 1 %, whatever the data's size.
NOISE_SAMPLE = 20_000

NewUserRatings = Mapping[Any, float] | pd.DataFrame


@dataclass(frozen=True)
class NewUser:
    """A user folded into the trained model (``Recommender.fold_in``).

    Attributes:
        model: a one-user model (his index is 0) sharing the trained model's item side.
        items: indices of the rated items the model knows, aligned with ``ratings``.
        ratings: his ratings of those items.
        unknown_items: raw ids of rated items the model does not know or never trained on, in the order
            given; they were left out of the fold-in.
    """

    model: RatingModel
    items: np.ndarray
    ratings: np.ndarray
    unknown_items: tuple[Any, ...]


class FoldIn(Ranking):
    """fold_in, recommend_new_user and predict_new_user."""

    def fold_in(self, ratings: NewUserRatings) -> NewUser:
        """Fit a new user's representation to his ratings, leaving the trained model untouched.

        Args:
            ratings: raw item id -> rating (a mapping), or a DataFrame with columns ``item`` and ``rating``.
                For an implicit-feedback model the values are taken as its training data was made: ratings
                (those >= the model's ``positive`` threshold are interactions; the others are only never
                recommended back), or event counts when the model was trained on events without a threshold.

        Returns:
            The folded-in user; ``unknown_items`` lists the rated items the model could not use.

        Raises:
            DataError: no ratings, a rating that is not a number or lies outside the model's scale, an item
                rated twice, or no rated item the model knows.
            UnsupportedError: the model cannot fold in users (the message says why).
        """
        raw, values = self._new_ratings(ratings)
        indices = self.item_ids.indices(raw, missing="none").astype(np.int64)
        known = indices >= 0
        known[known] = self._trained_items[indices[known]]
        unknown = tuple(raw[~known].tolist())
        if not known.any():
            raise DataError(f"none of the new user's {len(raw)} rated items is known to the model "
                            f"(unknown: {_preview(unknown)})")
        items, kept = indices[known], values[known]
        use, weights = self._interactions(kept)
        device = self.device
        model = self.model.fold_in(
            torch.from_numpy(items[use]).to(device), torch.from_numpy(weights[use].astype(np.float32)).to(device),
            self._fold_in_context(),
        )
        return NewUser(model.eval(), items, kept, unknown)

    def recommend_new_user(self, ratings: NewUserRatings | NewUser, n: int = 10, min_ratings: int = 0) -> pd.DataFrame:
        """Top-n items for a new user from his ratings: columns item, title, score (predicted rating).

        Items he rated are never recommended; ``result.attrs["unknown_items"]`` lists the rated items the model
        did not know (left out). ``min_ratings`` as in ``recommend`` (0 and 1: any item with a training rating).

        Raises:
            DataError, UnsupportedError: as ``fold_in``.
            ConfigError: n < 1 or min_ratings < 0.
        """
        self._check_n(n)
        candidates = self._candidates(min_ratings)
        user = ratings if isinstance(ratings, NewUser) else self.fold_in(ratings)
        device = self.device
        with torch.no_grad():
            scores = user.model.score_all_items(torch.zeros(1, dtype=torch.int64, device=device)).float()
        scores[0, torch.from_numpy(user.items).to(device)] = -math.inf
        items, values = self._best(scores, n, candidates)
        valid = items[0] >= 0
        frame = self._item_frame(items[0][valid], values[0][valid])
        frame.attrs["unknown_items"] = list(user.unknown_items)
        return frame

    def predict_new_user(self, ratings: NewUserRatings | NewUser, items: Sequence[Any] | np.ndarray) -> np.ndarray:
        """A new user's predicted ratings (float32, clipped to the scale) of raw item ids ``items``; for an
        implicit-feedback model, scores that only order items (not clipped).

        Raises:
            DataError, UnsupportedError: as ``fold_in``.
            UnknownIdError: an item the model does not know or never trained on.
        """
        indices = self._lookup(items, self.item_ids, self._trained_items, "error")
        user = ratings if isinstance(ratings, NewUser) else self.fold_in(ratings)
        device = self.device
        predicted = user.model.predict(
            torch.zeros(len(indices), dtype=torch.int64, device=device), torch.from_numpy(indices).to(device)
        )
        predicted = predicted.float().cpu().numpy()
        return predicted if self.scores_only else np.clip(predicted, self.scale.minimum, self.scale.maximum)

    # ---- helpers -------------------------------------------------------------------------------------------
    def _interactions(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which ratings the fold-in uses, their weights): all of them as given for a rating model; for an
        implicit-feedback model, as its training data was made: ratings >= ``positive`` count once, and
        without a threshold each value is an event count.

        Raises:
            DataError: an implicit-feedback model and no rating reaches its threshold.
        """
        if self.feedback != "implicit":
            return np.ones(len(values), dtype=bool), values
        if self.positive is None:
            return values > 0, values
        use = values >= self.positive
        if not use.any():
            raise DataError(f"none of the new user's ratings reaches {self.positive:g}, the lowest rating the "
                            "model counted as an interaction")
        return use, np.ones(len(values))

    def _new_ratings(self, ratings: NewUserRatings) -> tuple[np.ndarray, np.ndarray]:
        """(raw item ids in the model's id type, float64 ratings), checked.

        Raises:
            DataError: see ``fold_in``.
        """
        if isinstance(ratings, pd.DataFrame):
            missing = [col for col in ("item", "rating") if col not in ratings.columns]
            if missing:
                raise DataError(f"a new user's ratings need columns item and rating (missing: {', '.join(missing)})")
            raw_items, raw_values = ratings["item"].tolist(), ratings["rating"].tolist()
        elif isinstance(ratings, Mapping):
            raw_items, raw_values = list(ratings.keys()), list(ratings.values())
        else:
            raise DataError(f"a new user's ratings must be a mapping item -> rating or a DataFrame, "
                            f"got {type(ratings).__name__}")
        if not raw_items:
            raise DataError("a new user needs at least one rating")
        ids = np.empty(len(raw_items), dtype=object)
        ids[:] = [self.item_ids.coerce(item) for item in raw_items]
        values = np.empty(len(raw_values), dtype=np.float64)
        scale = self.scale
        for position, (item, value) in enumerate(zip(ids, raw_values, strict=True)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise DataError(f"the rating of item {item!r} is not a number: {value!r}")
            if not math.isfinite(value):
                raise DataError(f"the rating of item {item!r} is not a number: {value}")
            if self.feedback == "implicit":  # a rating (the model's threshold decides) or an event count
                if value < 0 or (self.positive is None and value == 0):
                    raise DataError(f"the {'rating' if self.positive is not None else 'event count'} {value} "
                                    f"of item {item!r} must be {'>= 0' if self.positive is not None else '> 0'}")
            elif not scale.minimum <= value <= scale.maximum:
                raise DataError(f"the rating {value} of item {item!r} is outside the model's scale "
                                f"{scale.minimum:g}..{scale.maximum:g}")
            values[position] = value
        if len(set(ids.tolist())) < len(ids):  # a set, not pandas: this runs on every service fold-in
            item, times = collections.Counter(ids.tolist()).most_common(1)[0]
            raise DataError(f"item {item!r} is rated {times} times; give one rating per item")
        return ids, values

    def _fold_in_context(self) -> FoldInContext:
        """The training run's regularization for ``model.fold_in`` (built once; it caches item-side terms)."""
        if self._fold_in_cache is None:
            from deepmf.models.registry import default_train_options
            from deepmf.training.config import TrainConfig

            config = self.train_config or TrainConfig.from_dict(default_train_options(self.model_name))
            sample = self._training_sample()
            members: tuple[FoldInContext, ...] = ()
            if self.model.name == "blend":
                from deepmf.training.engines.blend import member_train_config

                labels = self.model.config.members  # type: ignore[attr-defined]
                members = tuple(self._context(member_train_config(self.model, config, label), sample)  # type: ignore[arg-type]
                                for label in labels)
            self._fold_in_cache = self._context(config, sample, members)
        return self._fold_in_cache

    def _context(self, config: TrainConfig, sample: tuple[torch.Tensor, ...],
                 members: tuple[FoldInContext, ...] = ()) -> FoldInContext:
        # Sparse embedding gradients get no weight decay (training/engines/torch_engine.py).
        sparse = config.sparse or config.optimizer == "sparse_adam"
        return FoldInContext(l2=config.l2, row_decay=0.0 if sparse else config.weight_decay,
                             n_train=len(self.seen.ratings), train_sample=sample,  # type: ignore[arg-type]
                             members=members)

    def _training_sample(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Up to NOISE_SAMPLE training ratings drawn at random (seeded): (users, items, ratings) tensors."""
        n = len(self.seen.ratings)
        positions = np.random.default_rng(0).choice(n, size=min(n, NOISE_SAMPLE), replace=False)
        users = np.searchsorted(self.seen.indptr, positions, side="right") - 1
        device = self.device
        return (torch.from_numpy(users.astype(np.int64)).to(device),
                torch.from_numpy(self.seen.items[positions].astype(np.int64)).to(device),
                torch.from_numpy(self.seen.ratings[positions].astype(np.float32)).to(device))


def _preview(values: Sequence[Any], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")
