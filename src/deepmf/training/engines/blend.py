"""Engine "blend": fit a ridge blend of member models without ever touching test ratings.

Its single epoch (1) carves a validation split from the training ratings it is given
(``deepmf.data.splits.validation_split``), (2) trains a fresh copy of every member on the rest, with that
member's tuned training defaults and early stopping on the carved ratings, (3) fits the ridge weights on the
members' clipped predictions of the carved ratings (made at the ratings' timestamps when the data has times
and a member uses them, as test ratings are scored), and (4) refits the blend's own members on all training
ratings for the number of epochs each copy needed, which is the model that is kept. The only ratings read are
the ``train`` passed in, so a test set cannot leak into the weights.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from deepmf.errors import ConfigError

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings, RatingTensors
    from deepmf.models.base import RatingModel
    from deepmf.models.blend import Blend
    from deepmf.training.config import TrainConfig

# Training options a member inherits from the blend's own TrainConfig (everything else: the member's
# defaults).
INHERITED = ("seed", "threads")


def ridge_weights(predictions: np.ndarray, targets: np.ndarray, penalty: float) -> tuple[np.ndarray, float]:
    """Weights and intercept minimising ``|y - b - X w|^2 + penalty |w|^2`` (the intercept is not penalised).

    Args:
        predictions: (n, k) member predictions.
        targets: (n,) ratings.
        penalty: ridge penalty (>= 0).

    Returns:
        (weights of shape (k,), intercept).
    """
    x = np.asarray(predictions, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    x_mean, y_mean = x.mean(axis=0), y.mean()
    centred = x - x_mean
    gram = centred.T @ centred + penalty * np.eye(x.shape[1])
    weights = np.linalg.solve(gram, centred.T @ (y - y_mean))
    return weights, float(y_mean - x_mean @ weights)


def member_train_config(blend: Blend, config: TrainConfig, name: str) -> TrainConfig:
    """Member ``name``'s training options: its tuned defaults, the blend's overrides for it, and the keys it
    inherits from the blend's own ``config`` (also what a fold-in needs to know of its regularization)."""
    from deepmf.experiment import train_config_for
    from deepmf.models.blend import member_model

    values = dict(blend.config.member_train.get(name, {}))
    values.update({key: getattr(config, key) for key in INHERITED})
    return train_config_for(member_model(name), values)


def clipped_predictions(model: RatingModel, data: RatingTensors) -> np.ndarray:
    """A model's predictions of ``data`` clipped to its rating range, float64; at the ratings' times if it has them
    (models that do not use time ignore them)."""
    model.eval()
    device = next(model.parameters()).device
    times = None if data.timestamps is None else data.timestamps.to(device)
    predicted = model.predict_at(data.users.to(device), data.items.to(device), times)
    low, high = model.config.rating_min, model.config.rating_max
    return predicted.clamp(low, high).double().cpu().numpy()


class BlendEngine:
    """Engine "blend" (see the module docstring).

    Args:
        model: a ``Blend``; its members are trained in place and its weights set.
        train: all training ratings available to the blend.
        config: the blend's training options; members inherit ``seed`` and ``threads``.
        device: the blend's device; members train where their own defaults say (Bayesian MF on the CPU).

    Raises:
        ConfigError: the model is not a blend. (It is fitted in one epoch; ``select_engine`` refuses others.)
    """

    name = "blend"

    def __init__(self, model: Blend, train: Ratings, config: TrainConfig, device: torch.device) -> None:
        if getattr(model, "name", "") != "blend":
            raise ConfigError(f"the blend engine fits blends only, not {getattr(model, 'name', model)!r}")
        self.model = model
        self.train = train
        self.config = config
        self.device = device
        self.member_epochs: list[int] = []

    def member_config(self, name: str, **overrides: Any) -> TrainConfig:
        """A member's training options (``member_train_config``), with ``overrides``."""
        return replace(member_train_config(self.model, self.config, name), **overrides)

    def train_epoch(self, epoch: int) -> float:
        """Fit the blend (members on the carved split, weights, refit on all); return its train RMSE."""
        from deepmf.data.splits import validation_split
        from deepmf.models.blend import member_model
        from deepmf.models.registry import create_model
        from deepmf.training.trainer import Trainer

        blend = self.model
        cfg = blend.config
        fit_part, valid = validation_split(self.train, cfg.valid_fraction, seed=self.config.seed)
        valid_tensors = valid.to("cpu", timestamps=True)
        columns, self.member_epochs = [], []
        for name in cfg.members:
            member_train = self.member_config(name)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(member_train.seed)
                probe = create_model(member_model(name), fit_part, **cfg.member_options.get(name, {}))
            # Members that nothing steers by validation (Bayesian MF) are not scored on it every epoch: for a
            # 300-sweep sampler that scoring cost more time than the sampling.
            steered = member_train.steered_by_validation
            result = Trainer(member_train, progress=False).fit(probe, fit_part, valid if steered else None)
            self.member_epochs.append(result.best_epoch if member_train.patience > 0 else result.epochs_run)
            columns.append(clipped_predictions(probe, valid_tensors))
        weights, intercept = ridge_weights(np.stack(columns, axis=1), valid.ratings, cfg.ridge)
        blend.set_weights(torch.as_tensor(weights, dtype=blend.weights.dtype), intercept)

        for name, member, epochs in zip(cfg.members, blend.members, self.member_epochs, strict=True):
            # No validation ratings are left: train for as many epochs as early stopping chose above.
            member_train = self.member_config(name, epochs=max(epochs, 1), patience=0)
            Trainer(member_train, progress=False).fit(member, self.train, None)
            member.to("cpu")
        predicted = clipped_predictions(blend, self.train.to("cpu", timestamps=True))
        return math.sqrt(float(np.mean((predicted - self.train.ratings) ** 2))) if len(self.train) else 0.0

    def state_dict(self) -> dict[str, Any]:
        """Epochs each member was refit for (the members' weights are part of the model's state)."""
        return {"member_epochs": list(self.member_epochs)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.member_epochs = [int(e) for e in state["member_epochs"]]
