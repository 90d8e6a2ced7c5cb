"""``train_model``: build a model from the registry and train it with the Trainer, in one call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from deepmf.device import resolve_device
from deepmf.errors import ConfigError
from deepmf.memory import allocation_guard, require, training_copies
from deepmf.models.registry import create_model
from deepmf.training.trainer import Trainer, TrainResult

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.base import RatingModel
    from deepmf.training.config import TrainConfig


@dataclass
class TrainedModel:
    """A trained model with everything needed to describe or rebuild how it was made.

    Attributes:
        model: the trained module (on the training device, eval mode).
        model_name: its registry name.
        model_options: the options it was created with (the model's ``config`` holds the resolved values).
        train_config: the training options as the engine carried them out (its implied values filled in:
            the numba engine records optimizer "sgd" at batch size 1, whatever the model's torch defaults).
        result: history and timings.
    """

    model: RatingModel
    model_name: str
    model_options: dict[str, Any]
    train_config: TrainConfig
    result: TrainResult


def train_model(model_name: str, data: Ratings, train: Ratings, valid: Ratings | None,
                model_options: dict[str, Any], train_config: TrainConfig,
                **trainer_kwargs: Any) -> TrainedModel:
    """Create model ``model_name`` for ``data`` and train it on ``train``, validating on ``valid``.

    The model's tables are sized by the id maps that ``data`` and its splits share; its global mean comes from
    ``train`` only, so no test rating leaks into the model. Initialisation is seeded by ``train_config.seed``
    without touching the caller's global RNG.

    Args:
        model_name: registry name.
        data: the full Ratings (its id maps and side tables are shared by ``train``/``valid``).
        train: training ratings (a split of ``data``).
        valid: validation ratings for early stopping and history, or None.
        model_options: model options (``factors``, ``layers``, ...).
        train_config: training hyperparameters.
        **trainer_kwargs: passed to Trainer (checkpoint_dir, resume, progress, on_epoch).

    Raises:
        ConfigError: bad options, or ``train`` does not share ``data``'s id maps.
        ResourceError: the model's tables, gradients and optimizer state would not fit in memory (refused
            before the table that would not fit is allocated).
    """
    if train.user_ids is not data.user_ids or train.item_ids is not data.item_ids:
        raise ConfigError("training ratings must be a split of the full data set (shared id maps)")
    shown = ", ".join(f"{key}={value}" for key, value in model_options.items())
    what = f"training model {model_name}" + (f" with {shown}" if shown else "")
    device = resolve_device(train_config.device)
    with torch.random.fork_rng(devices=[]), allocation_guard(what, optimizer=train_config.optimizer):
        torch.manual_seed(train_config.seed)
        model = create_model(model_name, train, **model_options)
    if device.type != "cpu":  # built on the CPU, trained on the device
        weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
        require(weights * training_copies(train_config.optimizer), what, device)
    result = Trainer(train_config, **trainer_kwargs).fit(model, train, valid)
    model.eval()
    return TrainedModel(model, model_name, dict(model_options), result.config or train_config, result)
