"""Training engines: how one epoch of updates is computed. The Trainer (training/trainer.py) owns everything else.

An engine runs one pass over the (shuffled) training ratings and updates the model's parameters in place; the
Trainer does epochs, validation, early stopping, progress, history and checkpoints, whatever the engine.

- "torch": minibatch PyTorch with any optimizer and any RatingModel (CPU or CUDA).
- "numba": compiled lock-free parallel SGD for biased MF on CPU (training/engines/numba_mf.py). It writes into
  the same parameter tensors as the torch MF (``tensor.numpy()`` shares memory), so the saved model is identical.
- "gibbs", "autorec": model-specific engines (Bayesian MF sampling; full-batch AutoRec).
- implicit feedback: "bpr" (compiled BPR SGD), "ials" (compiled alternating conjugate-gradient solves),
  "closed" (closed-form models: EASE, popularity), "sampled" (the torch engine on positives plus sampled
  negatives, for deep models with loss bce).

Every engine class is constructed as ``Engine(model, train, config, device)`` with ``train`` a Ratings and
``config`` a TrainConfig. A model class lists the engines it can use in ``engines`` (class attribute, preferred
first); ``select_engine`` picks one.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Protocol

import torch

from deepmf.errors import ConfigError

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.base import RatingModel
    from deepmf.training.config import TrainConfig


class Engine(Protocol):
    """What the Trainer needs from an engine."""

    name: str

    def train_epoch(self, epoch: int) -> float:
        """Run one epoch of updates in place; return the training RMSE measured during the pass."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Engine state needed to resume exactly (optimizer moments, RNG state): tensors and JSON-able values."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        ...


# name -> ("module", "Class", devices it runs on). Imported lazily so numba is only compiled when used.
ENGINES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "torch": ("deepmf.training.engines.torch_engine", "TorchEngine", ("cpu", "cuda")),
    "numba": ("deepmf.training.engines.numba_mf", "NumbaMFEngine", ("cpu",)),
    "svdpp": ("deepmf.training.engines.numba_svdpp", "NumbaSVDppEngine", ("cpu",)),
    "gibbs": ("deepmf.training.engines.gibbs", "GibbsEngine", ("cpu",)),
    "autorec": ("deepmf.training.engines.autorec", "AutoRecEngine", ("cpu", "cuda")),
    "blend": ("deepmf.training.engines.blend", "BlendEngine", ("cpu", "cuda")),
    "bpr": ("deepmf.training.engines.numba_bpr", "NumbaBPREngine", ("cpu",)),
    "ials": ("deepmf.training.engines.ials", "IALSEngine", ("cpu",)),
    "closed": ("deepmf.training.engines.closed_form", "ClosedFormEngine", ("cpu", "cuda")),
    "sampled": ("deepmf.training.engines.sampled", "SampledEngine", ("cpu", "cuda")),
}


# Engines that draw negatives (``TrainConfig.negatives``); any other refuses the option.
_SAMPLING_ENGINES = ("bpr", "sampled")


def select_engine(model: RatingModel, config: TrainConfig, device: torch.device) -> str:
    """Name of the engine to train ``model`` with: the configured one, or the model's first that runs here.

    Raises:
        ConfigError: no engine can, or the chosen one cannot honour ``negatives``.
    """
    name = _select(model, config, device)
    if config.negatives is not None and name not in _SAMPLING_ENGINES:
        raise ConfigError(f"negatives apply to implicit-feedback training with sampled negatives (bpr, and deepmf/"
                          f"neumf with loss bce); engine {name!r} draws none")
    return name


def _select(model: RatingModel, config: TrainConfig, device: torch.device) -> str:
    allowed: tuple[str, ...] = getattr(model, "engines", ("torch",))
    if config.engine != "auto":
        if config.engine not in allowed:
            raise ConfigError(f"engine {config.engine!r} cannot train model {model.name!r} "
                              f"(it supports: {', '.join(allowed)})")
        if device.type not in ENGINES[config.engine][2]:
            raise ConfigError(f"engine {config.engine!r} does not run on {device.type}")
        return config.engine
    for name in allowed:
        if device.type in ENGINES[name][2] and not _asks_for_torch_only_options(name, model, config):
            return name
    raise ConfigError(f"no engine can train model {model.name!r} on {device.type}")


# The compiled SGD engines run plain SGD with per-row L2: they cannot honour another optimizer or weight decay.
_SGD_ENGINES = ("numba", "svdpp", "bpr")


def _asks_for_torch_only_options(engine: str, model: RatingModel, config: TrainConfig) -> bool:
    """True when ``config`` sets something a compiled SGD engine would silently ignore.

    The model's own default optimizer does not count: its defaults were tuned for both engines.
    """
    if engine not in _SGD_ENGINES:
        return False
    default_optimizer = getattr(model, "default_train", {}).get("optimizer", "sgd")
    return config.weight_decay > 0 or config.optimizer not in ("sgd", default_optimizer)


def create_engine(name: str, model: RatingModel, train: Ratings, config: TrainConfig,
                  device: torch.device) -> Engine:
    module_name, class_name, _ = ENGINES[name]
    engine_class = getattr(importlib.import_module(module_name), class_name)
    return engine_class(model, train, config, device)
