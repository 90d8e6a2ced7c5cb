"""Blend: a ridge regression over several models' predictions (``--model blend:mf,svdpp,bayes,autorec``).

The blend holds its member models as submodules and one weight per member plus an intercept. The weights are
fit by the "blend" engine (training/engines/blend.py) on a validation split carved from the training data
only; the members are then refit on all of it. A prediction is ``intercept + sum_k w_k clip(member_k(u, i))``,
and ranking all items is the same weighted sum of each member's one-matmul ``score_all_items``. When a member
uses time (Bayesian MF with its date feature), ``predict_at`` passes the ratings' timestamps to every member;
the weights are fit on predictions made at the validation ratings' own times, the way test ratings are scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from deepmf.errors import ConfigError
from deepmf.models.base import RatingModel
from deepmf.models.foldin import FoldInContext
from deepmf.models.layers import ModelConfig

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings

DEFAULT_MEMBERS = ("mf", "svdpp", "bayes", "autorec", "bayes#r16")
# (model options, training options) a member gets inside a blend unless the blend's options say otherwise.
# Bayesian MF gets a longer chain than alone (600 sweeps, 200 kept samples, against 300 / 100): its posterior
# mean is less noisy, and the blend's weights carry that further. Chosen on validation only: the blend's own
# 10 % carve of each canonical ML-100K training part, ridge weights scored by 10-fold cross-validation over
# the carved ratings, mean of u1..u5: 200 sweeps 0.8843, 300 0.8837, 600 0.8833 (bench/blend_design.py).
# A second, independent Bayesian MF of rank 16 ("bayes#r16", 300 sweeps) adds what another chain of rank 10
# does not: 0.8826 with it against 0.8833 without, on the same validation protocol (a second rank-10 chain with
# another seed: 0.8833, no gain).
MEMBER_DEFAULTS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "bayes": ({"samples": 200}, {"epochs": 600}),
    "bayes#r16": ({"rank": 16}, {}),
}
LABEL_MARK = "#"


def member_model(label: str) -> str:
    """The registry model behind a member label: "bayes#r16" is a second Bayesian MF, named apart."""
    return label.partition(LABEL_MARK)[0]


def parse_members(value: Any) -> tuple[str, ...]:
    """Member labels from "a,b,c" or a list; ConfigError when empty, repeated, nested or not a known model.

    A label is a model name, optionally followed by ``#tag`` to hold a second copy of a model with other
    options ("bayes,bayes#r16" with ``member_options={"bayes#r16": {"rank": 16}}``).
    """
    from deepmf.models.registry import MODELS

    names = [n.strip() for n in value.split(",")] if isinstance(value, str) else list(value)
    names = [n for n in names if n]
    if not names:
        raise ConfigError("a blend needs at least one member model, e.g. blend:bayes,autorec")
    for name in names:
        if not isinstance(name, str) or name.partition(":")[0] == "blend" or member_model(name) == "blend":
            raise ConfigError(f"a blend member must be a single model name, got {name!r}")
        model, mark, tag = name.partition(LABEL_MARK)
        if model not in MODELS:
            raise ConfigError(f"unknown blend member {name!r}: choose from {', '.join(sorted(MODELS))}")
        if mark and not tag.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(f"a blend member tag must be letters, digits, '-' or '_', got {name!r}")
    if len(set(names)) != len(names):
        raise ConfigError(f"blend members must differ (name a second copy model#tag), got {', '.join(names)}")
    return tuple(names)


@dataclass(kw_only=True)
class BlendConfig(ModelConfig):
    """Members and blending options.

    Attributes:
        members: member labels, in order ("mf,bayes" or a list; "bayes#r16" names a second Bayesian MF).
        member_options: model options per member label (defaults of each model where absent).
        member_train: training options per member label, over each model's tuned defaults.
        ridge: L2 penalty on the blend weights (in units of validation ratings).
        valid_fraction: share of the training ratings carved off to fit the weights.
        member_configs: each member's full config, filled when the blend is built (so it can be rebuilt).
    """

    members: Any = DEFAULT_MEMBERS
    member_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    member_train: dict[str, dict[str, Any]] = field(default_factory=dict)
    ridge: float = 1.0
    valid_fraction: float = 0.1
    member_configs: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.members = list(parse_members(self.members))
        # Own copies: filling in member defaults must not write into the caller's dicts.
        self.member_options = {name: dict(values) for name, values in self.member_options.items()}
        self.member_train = {name: dict(values) for name, values in self.member_train.items()}
        for what, table in (("member_options", self.member_options), ("member_train", self.member_train)):
            stray = sorted(set(table) - set(self.members))
            if stray:
                raise ConfigError(f"{what} names model(s) that are not blend members: {', '.join(stray)}")
        if not self.ridge >= 0:
            raise ConfigError(f"ridge must be >= 0, got {self.ridge}")
        if not 0 < self.valid_fraction < 1:
            raise ConfigError(f"valid_fraction must be in (0, 1), got {self.valid_fraction}")
        if self.member_configs and len(self.member_configs) != len(self.members):
            raise ConfigError(f"blend has {len(self.members)} members but {len(self.member_configs)} configs")


class Blend(RatingModel):
    """Ridge blend of member models (see the module docstring)."""

    name: ClassVar[str] = "blend"
    config_class: ClassVar[Any] = BlendConfig
    engines = ("blend",)
    # One epoch does everything (members on the carved split, weights, refit); members train with their own
    # tuned defaults, on the CPU unless their defaults say otherwise.
    default_train: ClassVar[dict[str, Any]] = {"epochs": 1, "patience": 0, "device": "cpu"}

    def __init__(self, config: BlendConfig, members: list[RatingModel] | None = None) -> None:
        super().__init__()
        from deepmf.models.registry import model_from_config

        if members is None:
            if not config.member_configs:
                raise ConfigError("a blend rebuilt from its config needs member_configs")
            pairs = zip(config.members, config.member_configs, strict=True)
            members = [model_from_config(member_model(name), cfg) for name, cfg in pairs]
        self.config = config
        self.members = nn.ModuleList(members)
        self.uses_time = any(member.uses_time for member in members)
        # Until fitted the blend is the plain mean of its members.
        self.weights = nn.Parameter(torch.full((len(members),), 1.0 / len(members)), requires_grad=False)
        self.intercept = nn.Parameter(torch.zeros(()), requires_grad=False)

    @classmethod
    def from_data(cls, data: Ratings, **options: Any) -> Blend:
        """Build every member for ``data`` from its options, then the blend around them."""
        from deepmf.models.registry import create_model

        cls.check_feedback(data.feedback)
        allowed = set(BlendConfig.option_names()) - {"member_configs"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ConfigError(f"unknown option(s) for model 'blend': {', '.join(unknown)} "
                              f"(valid: {', '.join(sorted(allowed))})")
        config = BlendConfig(**BlendConfig.data_values(data), **options)
        for name in config.members:
            model_options, train_options = MEMBER_DEFAULTS.get(name, ({}, {}))
            config.member_options[name] = {**model_options, **config.member_options.get(name, {})}
            config.member_train[name] = {**train_options, **config.member_train.get(name, {})}
        members = [create_model(member_model(name), data, **config.member_options.get(name, {}))
                   for name in config.members]
        config.member_configs = [m.config_dict() for m in members]
        return cls(config, members)

    def _clipped(self, predictions: torch.Tensor) -> torch.Tensor:
        return predictions.clamp(self.config.rating_min, self.config.rating_max)

    def member_predictions(self, users: torch.Tensor, items: torch.Tensor,
                           timestamps: torch.Tensor | None = None) -> torch.Tensor:
        """Each member's clipped predicted ratings, (B, n_members); at ``timestamps`` when given."""
        return torch.stack([self._clipped(m.predict_at(users, items, timestamps)) for m in self.members], dim=-1)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.intercept + self.member_predictions(users, items) @ self.weights

    @torch.no_grad()
    def predict_at(self, users: torch.Tensor, items: torch.Tensor,
                   timestamps: torch.Tensor | None) -> torch.Tensor:
        """The blend of the members' predictions at ``timestamps`` (members without time ignore them)."""
        return self.intercept + self.member_predictions(users, items, timestamps) @ self.weights

    @torch.no_grad()
    def score_all_items(self, users: torch.Tensor) -> torch.Tensor:
        scores = self.intercept.expand(len(users), self.config.n_items).clone()
        for weight, member in zip(self.weights, self.members, strict=True):
            scores.add_(self._clipped(member.score_all_items(users)), alpha=float(weight))
        return scores

    def set_weights(self, weights: torch.Tensor, intercept: float) -> None:
        """Install fitted blend weights (one per member) and the intercept."""
        if weights.shape != self.weights.shape:
            raise ConfigError(f"blend has {len(self.weights)} members, got {len(weights)} weights")
        with torch.no_grad():
            self.weights.copy_(weights)
            self.intercept.fill_(float(intercept))

    def fold_in(self, items: torch.Tensor, ratings: torch.Tensor, context: FoldInContext) -> RatingModel:
        """Every member folds the user in under its own training options (``context.members``, in member
        order); the one-user blend weighs them with the trained weights."""
        if len(context.members) != len(self.members):
            raise ConfigError(f"blend: fold-in needs one context per member ({len(self.members)}), "
                              f"got {len(context.members)}")
        folded = [member.fold_in(items, ratings, member_context)
                  for member, member_context in zip(self.members, context.members, strict=True)]
        blend = Blend(replace(self.config, n_users=1), folded)
        blend.set_weights(self.weights.detach(), float(self.intercept))
        return blend.eval()

    @torch.no_grad()
    def _joined(self, vectors: list[torch.Tensor]) -> torch.Tensor:
        # Each member's vectors unit-normalised, so every member counts the same in a cosine similarity.
        return torch.cat([nn.functional.normalize(v.float(), dim=1) for v in vectors], dim=1)

    def item_embeddings(self) -> torch.Tensor:
        return self._joined([m.item_embeddings() for m in self.members])

    def user_embeddings(self) -> torch.Tensor:
        return self._joined([m.user_embeddings() for m in self.members])
