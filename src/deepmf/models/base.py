"""The contract every rating model satisfies.

Models are plain ``torch.nn.Module``s: no files, no CLI, no trainer.

A model is rebuilt from ``(name, config)``: ``config`` is a JSON-able dataclass holding every shape
(n_users, n_items, side-feature vocab sizes) and hyperparameter, and side-feature lookup tables are registered
buffers, so ``state_dict()`` + ``config`` fully describe a trained model (see deepmf.io).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from deepmf.errors import ConfigError, UnsupportedError
from deepmf.models.foldin import FoldInContext, fit_user_rows, one_user_copy

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings


class RatingModel(nn.Module):
    """Base class of all models.

    Subclasses set ``name`` (the registry key) and ``self.config`` and implement ``forward``.
    ``head`` is "regression" (forward gives ratings, shape (B,)) or "classification" (forward gives logits,
    shape (B, n_classes), and buffer ``class_values`` maps classes to ratings).
    """

    name: ClassVar[str] = "base"
    # The config dataclass: data-derived fields (``data_values``) plus user options (``option_names``).
    config_class: ClassVar[Any]
    # Tuned TrainConfig values for this model (see deepmf.models.registry.default_train_options), and for models
    # that learn both kinds of feedback, those for implicit feedback (None: the same).
    default_train: ClassVar[dict[str, Any]] = {}
    default_train_implicit: ClassVar[dict[str, Any] | None] = None
    # Training engines this model can use, preferred first (see deepmf.training.engines.select_engine).
    engines: tuple[str, ...] = ("torch",)
    # The engines ``default_train`` was tuned for (None: all of ``engines``). Under torchrun an ``auto`` engine
    # switches to the data-parallel torch engine only if it is one of these: trained with settings tuned for
    # another engine, a model would come out quietly worse.
    tuned_engines: ClassVar[tuple[str, ...] | None] = None
    config: Any
    head: str = "regression"
    # True when predictions depend on when a rating is made (``predict_at`` uses the timestamps); evaluation
    # then scores held-out ratings at their own times.
    uses_time: bool = False
    # What ``predict`` gives: "rating" (on the data's rating scale: clipped to it, scored by RMSE) or "score"
    # (implicit-feedback models: only the order of items means anything; never clipped, ranking metrics only).
    output_kind: str = "rating"
    # The kinds of feedback (Ratings.feedback) the model learns from; ``from_data`` refuses others.
    feedbacks: tuple[str, ...] = ("explicit",)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    # ---- construction --------------------------------------------------------------------------------------
    @classmethod
    def from_data(cls, data: Ratings, **options: Any) -> RatingModel:
        """Build a model sized for ``data`` (shapes, training mean, scale, side tables) with user ``options``.

        Raises:
            ConfigError: an unknown option, or an invalid value (zero factors, bad layers, ...), or data of a
                feedback kind the model does not learn.
        """
        cls.check_feedback(data.feedback)
        allowed = cls.config_class.option_names()
        unknown = sorted(set(options) - set(allowed))
        if unknown:
            raise ConfigError(f"unknown option(s) for model {cls.name!r}: {', '.join(unknown)} "
                              f"(valid: {', '.join(allowed)})")
        model = cls(cls.config_class(**cls.config_class.data_values(data), **options))
        model.fill(data)
        return model

    @classmethod
    def check_feedback(cls, feedback: str) -> None:
        """ConfigError unless the model learns from ``feedback`` ("explicit" or "implicit") data."""
        if feedback in cls.feedbacks:
            return
        if feedback == "implicit":
            raise ConfigError(f"model {cls.name!r} learns explicit ratings; for implicit feedback use bpr, ials, "
                              "ease, pop, or deepmf/neumf with loss bce")
        raise ConfigError(f"model {cls.name!r} learns implicit feedback: load the data with --feedback implicit "
                          "(and --positive R to keep ratings >= R as interactions)")

    def fill(self, data: Ratings) -> None:
        """Copy side tables of ``data`` into the model's buffers (models without side features do nothing)."""

    # ---- training ------------------------------------------------------------------------------------------
    def loss(self, output: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch: squared error for regression, cross-entropy over rating classes otherwise."""
        if self.head == "classification":
            classes = torch.bucketize(ratings, self.class_boundaries)
            return nn.functional.cross_entropy(output, classes)
        return nn.functional.mse_loss(output, ratings)

    def regularization(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor | None:
        """Optional per-batch L2 on the embedding rows the batch used (None if the model has none)."""
        return None

    def forward_with_penalty(self, users: torch.Tensor,
                             items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(forward(users, items), regularization(users, items))``, what a training step needs.

        Models whose penalty is over rows that forward already gathers override this to reuse them (one
        lookup and one gradient scatter per table instead of two).
        """
        return self(users, items), self.regularization(users, items)

    # ---- prediction ----------------------------------------------------------------------------------------
    def to_rating(self, output: torch.Tensor) -> torch.Tensor:
        """Turn forward's output into ratings: identity for regression, expected rating for classification."""
        if self.head == "classification":
            return output.softmax(dim=-1) @ self.class_values
        return output

    @torch.no_grad()
    def predict(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Predicted ratings (B,), unclipped. Callers put the model in eval mode."""
        return self.to_rating(self(users, items))

    @torch.no_grad()
    def predict_at(self, users: torch.Tensor, items: torch.Tensor,
                   timestamps: torch.Tensor | None) -> torch.Tensor:
        """Predicted ratings (B,) of pairs rated at ``timestamps`` (int64 unix seconds), unclipped.

        ``None`` (no times known) and models that do not use time (``uses_time`` False) give ``predict``, so
        callers that may or may not have times call this one method.
        """
        return self.predict(users, items)

    @torch.no_grad()
    def predict_most_likely(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Rating of the most likely class (classification head); the same as ``predict`` for regression."""
        output = self(users, items)
        if self.head == "classification":
            return self.class_values[output.argmax(dim=-1)]
        return output

    @torch.no_grad()
    def predict_in_batches(self, users: torch.Tensor, items: torch.Tensor, *, batch_size: int = 1 << 16,
                           most_likely: bool = False) -> torch.Tensor:
        """``predict`` (or ``predict_most_likely``) over many pairs in fixed-size batches; one output tensor.

        Memory stays bounded by ``batch_size`` whatever the number of pairs; callers set eval mode.
        """
        method = self.predict_most_likely if most_likely else self.predict
        if users.shape[0] == 0:
            return torch.empty(0, device=users.device)
        return torch.cat([method(users[s:s + batch_size], items[s:s + batch_size])
                          for s in range(0, users.shape[0], batch_size)])

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor) -> torch.Tensor:
        """Predicted rating of every item for each user: (B, n_items).

        The default runs one batched forward pass over the (B x n_items) grid; MF-like models override it
        with a single matrix product.
        """
        n_items = self.config.n_items
        grid_users = users.repeat_interleave(n_items)
        grid_items = torch.arange(n_items, device=users.device).repeat(users.shape[0])
        return self.predict(grid_users, grid_items).view(users.shape[0], n_items)

    def item_embeddings(self) -> torch.Tensor:
        """Learned item vectors (n_items, d) used by similar-items."""
        raise NotImplementedError(f"{self.name} has no item embeddings")

    def user_embeddings(self) -> torch.Tensor:
        """Learned user vectors (n_users, d) used by similar-users."""
        raise NotImplementedError(f"{self.name} has no user embeddings")

    def bias_terms(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """(global mean, user biases, item biases) for the cold-start fallback; None if the model has none."""
        return None

    # ---- fold-in (deepmf.models.foldin) --------------------------------------------------------------------
    def user_rows(self) -> dict[str, torch.Tensor]:
        """State entries with one row per user, each mapped to the new user's starting row (1, ...).

        Models whose user enters only through such rows fold a new user in by gradient steps on them
        (``fold_in``'s default); an empty dict means the model has no such rows.
        """
        return {}

    def fold_in(self, items: torch.Tensor, ratings: torch.Tensor, context: FoldInContext) -> RatingModel:
        """A one-user model (user 0) fitted to a new user's ``ratings`` of item indices ``items``.

        Everything the trained model learned stays fixed and shared; only the new user's parameters are fitted,
        under the training run's regularization (``context``). The default fits the rows of ``user_rows`` by
        gradient steps (``deepmf.models.foldin.fit_user_rows``); models linear in their user override it with
        a closed form.

        Raises:
            UnsupportedError: the model has no per-user parameters to fit.
        """
        if self.output_kind == "score":
            raise UnsupportedError(f"model {self.name!r} scores implicit feedback by a loss over sampled negative "
                                   "items, which a fold-in from a new user's few interactions does not reproduce; "
                                   "bpr, ials, ease and pop fold new users in")
        rows = self.user_rows()
        if not rows:
            raise UnsupportedError(f"model {self.name!r} cannot fold in a new user: it has no per-user "
                                   "parameters to fit")
        parameters = dict(self.named_parameters())  # the rest (side-feature codes) are fixed buffers
        trainable = [name for name in rows if name in parameters]
        return fit_user_rows(one_user_copy(self, rows), trainable, items, ratings, context)

    def config_dict(self) -> dict[str, Any]:
        return asdict(self.config)
