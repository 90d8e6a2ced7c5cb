"""Bayesian matrix factorization (BPMF, Salakhutdinov & Mnih 2008) with SVD++-style implicit features on both
sides and a day-of-rating feature (Rendle et al. 2019), trained by Gibbs sampling (training/engines/gibbs.py).

The trained model is the posterior mean of the sampled predictions. Averaged over S kept samples, the
prediction ``mu_s + b_us + c_is + <U_us, V_is>`` is
``mean(mu) + mean(b_u) + mean(c_i) + <[U_u1..U_uS], [V_i1..V_iS]> / S``, so the model stores the S samples of
the effective user and item vectors side by side, each scaled by 1/sqrt(S): prediction, ranking (one matrix
product) and similar-items need nothing else. Implicit and date features are folded into those vectors by
the sampler (see its docstring); with the date feature the model also keeps the per-day terms, so
``predict_at`` can score a rating at the day it is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from deepmf.errors import ConfigError
from deepmf.models.base import RatingModel
from deepmf.models.bilinear import BilinearModel, FoldedUser
from deepmf.models.foldin import FoldInContext, ridge
from deepmf.models.layers import ModelConfig, check_positive

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings

SECONDS_PER_DAY = 86_400


@dataclass(kw_only=True)
class BayesMFConfig(ModelConfig):
    """Shapes and sampler settings of a Bayesian MF.

    Attributes:
        rank: factors per sample.
        samples: posterior samples kept (the stored vectors have ``rank * samples`` columns); the sweeps after
            burn-in are thinned evenly down to this many.
        burn_in: sweeps discarded before averaging starts.
        implicit_user: add the items each user rated (SVD++) to his vector.
        implicit_item: add the users who rated each item ("flipped" SVD++) to its vector.
        date: model the day of each rating (bias and factors per day; default: on when the ratings have
            timestamps). A prediction without a time is the mean of the user's predictions over the days he
            rated on in training; ``predict_at`` uses the day.
        first_day: first training day (unix day number; filled from the data).
        n_days: days from the first to the last training day (filled from the data).
    """

    rank: int = 10
    samples: int = 100
    burn_in: int = 20
    implicit_user: bool = True
    implicit_item: bool = True
    date: bool = True
    first_day: int = 0
    n_days: int = 1

    data_fields = (*ModelConfig.data_fields, "first_day", "n_days")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("rank", self.rank)
        check_positive("samples", self.samples)
        if isinstance(self.burn_in, bool) or not isinstance(self.burn_in, int) or self.burn_in < 0:
            raise ConfigError(f"burn_in must be a non-negative integer, got {self.burn_in!r}")
        check_positive("n_days", self.n_days)

    @classmethod
    def data_values(cls, data: Ratings) -> dict[str, Any]:
        """Shapes from the data, and the span of rating days (first day, number of days) if it has times."""
        values = super().data_values(data)
        if data.timestamps is not None and len(data):
            days = data.timestamps // SECONDS_PER_DAY
            values.update(first_day=int(days.min()), n_days=int(days.max() - days.min()) + 1)
        return values


class BayesMF(BilinearModel):
    """Posterior-mean Bayesian MF; parameters are named as in biased MF (``user_factors``, ``item_factors``,
    ``user_bias``, ``item_bias``, ``global_bias``) but are filled by the sampler, not by gradients.
    """

    name: ClassVar[str] = "bayes"
    config_class: ClassVar[Any] = BayesMFConfig
    # The numba sampler on the CPU, the batched torch sampler on a GPU (deepmf.training.engines.place decides).
    engines = ("gibbs", "gibbs-torch")
    # One epoch is one sweep. Priors are sampled, so nothing else needs tuning; patience stays 0 because the
    # posterior average only improves with more samples.
    default_train: ClassVar[dict[str, Any]] = {"epochs": 300, "patience": 0}

    def __init__(self, config: BayesMFConfig) -> None:
        super().__init__()
        self.config = config
        self.uses_time = config.date
        width = config.rank * config.samples
        rows = {"user_factors": config.n_users, "item_factors": config.n_items}
        averaged = {"user_bias": config.n_users, "item_bias": config.n_items}
        if config.date:
            # Per-day terms, and each user's mix of them (his training days), for predictions at a given time.
            rows.update(day_factors=config.n_days, user_day_mix=config.n_users)
            averaged.update(day_bias=config.n_days, user_day_bias=config.n_users)
        self.slot_tables = tuple(rows)
        self.averaged_tables = ("global_bias", *averaged)
        for name, n in rows.items():
            setattr(self, name, nn.Embedding(n, width))
        for name, n in averaged.items():
            setattr(self, name, nn.Embedding(n, 1))
        self.global_bias = nn.Parameter(torch.zeros(()), requires_grad=False)
        for name in (*rows, *averaged):
            nn.init.zeros_(getattr(self, name).weight)
            getattr(self, name).weight.requires_grad_(False)

    @classmethod
    def from_data(cls, data: Ratings, **options: Any) -> BayesMF:
        """As ``RatingModel.from_data``; the date feature defaults to on only when the ratings have times."""
        if data.timestamps is None:
            options.setdefault("date", False)
        return super().from_data(data, **options)  # type: ignore[return-value]

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        return self.user_factors(users)

    def item_vectors(self, items: torch.Tensor | None = None) -> torch.Tensor:
        return self.item_factors.weight if items is None else self.item_factors(items)

    def offsets(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.global_bias, self.user_bias.weight[:, 0], self.item_bias.weight[:, 0]

    def predict_at(self, users: torch.Tensor, items: torch.Tensor,
                   timestamps: torch.Tensor | None) -> torch.Tensor:
        """Predicted ratings of (user, item) pairs rated at ``timestamps`` (unix seconds), (B,).

        With the date feature this uses the day's own bias and factors (a day outside the training days counts
        as the nearest one); without it, or without timestamps, it equals ``predict``.
        """
        if not self.config.date or timestamps is None:
            return self.predict(users, items)
        with torch.no_grad():
            days = (torch.div(timestamps, SECONDS_PER_DAY, rounding_mode="floor") - self.config.first_day)
            days = days.clamp(0, self.config.n_days - 1)
            raw_user = self.user_factors(users) - self.user_day_mix(users)
            day = self.day_factors(days)
            bias = (self.global_bias + self.user_bias(users)[:, 0] - self.user_day_bias(users)[:, 0]
                    + self.item_bias(items)[:, 0] + self.day_bias(days)[:, 0])
            return bias + ((raw_user + day) * self.item_factors(items) + raw_user * day).sum(-1)

    # ---- fold-in -------------------------------------------------------------------------------------------
    def _samples(self, table: nn.Embedding) -> torch.Tensor:
        """A slot table as (rows, samples, rank): each kept sample's vectors, unscaled."""
        cfg = self.config
        return table.weight.view(-1, cfg.samples, cfg.rank) * cfg.samples ** 0.5

    @torch.no_grad()
    def fold_in_priors(self, context: FoldInContext) -> dict[str, torch.Tensor]:
        """Per kept sample: the prior (mean, precision) of a user's vector and the noise precision.

        The sampler draws these hyperparameters every sweep but the model keeps only the averaged vectors, so
        they are estimated from what it keeps (empirical Bayes): a user vector's prior is the per-dimension
        mean and inverse variance of the trained users' vectors in that sample, the offset's those of the
        user offsets, and the noise precision the inverse mean squared residual of that sample's predictions
        on a sample of the training ratings (``context.train_sample``).
        """
        users_vectors, item_vectors = self._samples(self.user_factors), self._samples(self.item_factors)
        global_offset, user_offset, item_offset = self.offsets()
        if context.train_sample is None:
            raise ConfigError("bayes: folding in a user needs a sample of the training ratings")
        users, items, ratings = context.train_sample
        residual = ratings - global_offset - user_offset[users] - item_offset[items]
        squared = torch.zeros(self.config.samples, dtype=torch.float64, device=ratings.device)
        for start in range(0, len(users), 4096):  # (chunk, samples, rank) at a time
            rows = slice(start, start + 4096)
            dots = (users_vectors[users[rows]] * item_vectors[items[rows]]).sum(-1)
            squared += (residual[rows, None] - dots).double().square().sum(0)
        variance = users_vectors.var(0).clamp_min(1e-6)
        offset_variance = user_offset.var().clamp_min(1e-6)
        return {"mean": users_vectors.mean(0), "precision": 1 / variance,
                "offset_mean": user_offset.mean(), "offset_precision": 1 / offset_variance,
                "noise_precision": (len(users) / squared.clamp_min(1e-12)).float()}

    @torch.no_grad()
    def fold_in(self, items: torch.Tensor, ratings: torch.Tensor, context: FoldInContext) -> RatingModel:
        """Per kept sample, the posterior mean of the new user's vector and offset given that sample's item
        vectors (a Gaussian conditional: ridge with the sample's prior and noise precision, from
        ``fold_in_priors``); the user's model averages them as the trained model averages its samples.

        The date feature is left out: a new user has no training days, so his predictions are time-free.
        """
        cfg = self.config
        priors = context.cached("bayes_priors", lambda: self.fold_in_priors(context))
        global_offset, _, item_offset = self.offsets()
        rated = self._samples(self.item_factors)[items].transpose(0, 1)  # (samples, n, rank)
        design = torch.cat([rated, torch.ones_like(rated[..., :1])], dim=-1)
        targets = (ratings - global_offset - item_offset[items]).expand(cfg.samples, -1)
        noise = priors["noise_precision"][:, None]
        penalty = torch.cat([priors["precision"], priors["offset_precision"].expand(cfg.samples, 1)], -1) / noise
        prior_mean = torch.cat([priors["mean"], priors["offset_mean"].expand(cfg.samples, 1)], dim=-1)
        solution = ridge(design, targets, penalty, prior_mean)
        vector = solution[:, : cfg.rank] / cfg.samples ** 0.5  # stored side by side, as the item vectors
        return FoldedUser(self, self.item_factors.weight, item_offset, global_offset, vector.reshape(-1),
                          solution[:, cfg.rank].mean())

    @torch.no_grad()
    def add_sample(self, kept: int, means: dict[str, Any], vectors: dict[str, np.ndarray]) -> None:
        """Average one posterior sample into the model, ``kept`` samples being in it already.

        Args:
            kept: samples already averaged; 0 replaces whatever is there (the sampler shows its burn-in
                samples this way).
            means: value per averaged table: ``global_bias`` (a float), ``user_bias``, ``item_bias`` and, with
                the date feature, ``day_bias`` and ``user_day_bias`` (arrays or tensors of the table's length).
            vectors: (rows, rank) array (or tensor on the model's device) per slot table: ``user_factors``,
                ``item_factors`` and, with the date feature, ``day_factors`` and ``user_day_mix``. Slot ``kept``
                receives them; earlier slots are rescaled so each slot weighs 1/sqrt(kept + 1).

        Raises:
            ConfigError: ``kept`` is outside ``0..samples-1``, or a table is missing or has the wrong shape.
        """
        cfg = self.config
        if not 0 <= kept < cfg.samples:
            raise ConfigError(f"bayes: sample slot {kept} outside 0..{cfg.samples - 1}")
        if set(means) != set(self.averaged_tables) or set(vectors) != set(self.slot_tables):
            raise ConfigError(f"bayes: a sample needs {', '.join(self.averaged_tables + self.slot_tables)}")
        weight = 1.0 / (kept + 1)
        block = slice(kept * cfg.rank, (kept + 1) * cfg.rank)
        for name, values in vectors.items():
            table = getattr(self, name).weight
            if values.shape != (table.shape[0], cfg.rank):
                raise ConfigError(f"bayes: {name} sample must be ({table.shape[0]}, {cfg.rank}), "
                                  f"got {values.shape}")
            # On the CPU through numpy views: torch would run these whole-table ops on its OpenMP pool, whose
            # threads then spin beside the sampler; on 2 cores that slowed every sweep by more than half. On a
            # GPU the tensors themselves (the torch sampler passes device tensors).
            array = table.numpy() if table.device.type == "cpu" else table
            if isinstance(values, torch.Tensor) and table.device.type == "cpu":
                values = values.numpy()
            if kept == 0:
                array[:] = 0.0
            else:
                array[:, : block.start] *= np.sqrt(kept * weight)
            array[:, block] = values * np.sqrt(weight)
        for name, values in means.items():
            parameter = getattr(self, name)
            table = parameter if name == "global_bias" else parameter.weight[:, 0]
            table.mul_(1.0 - weight).add_(torch.as_tensor(values * weight, dtype=table.dtype))
