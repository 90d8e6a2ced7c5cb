"""Training engines: how one epoch of updates is computed. The Trainer (training/trainer.py) owns everything else.

An engine runs one pass over the (shuffled) training ratings and updates the model's parameters in place; the
Trainer does epochs, validation, early stopping, progress, history and checkpoints, whatever the engine.

- "torch": minibatch PyTorch with any optimizer and any RatingModel (CPU or CUDA).
- "numba": compiled lock-free parallel SGD for biased MF on CPU (training/engines/numba_mf.py). It writes into
  the same parameter tensors as the torch MF (``tensor.numpy()`` shares memory), so the saved model is identical.
- "cuda-sgd": the same SGD as "numba" as one Triton kernel per epoch on a CUDA GPU (training/engines/cuda_sgd.py).
- "gibbs", "gibbs-torch": Bayesian MF sampling, with numba kernels on the CPU or batched torch on any device.
- "autorec": full-batch AutoRec.

Every engine class is constructed as ``Engine(model, train, config, device)`` with ``train`` a Ratings and
``config`` a TrainConfig. A model class lists the engines it can use in ``engines`` (class attribute, preferred
first); ``select_engine`` picks one for a device, and ``place`` picks the device too when it is "auto": with
CUDA present each model goes where it is expected to be faster (``deepmf.device.gpu_pays_off``).
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, Protocol

import torch

from deepmf.device import auto_device_requested, gpu_pays_off, resolve_device
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
    "cuda-sgd": ("deepmf.training.engines.cuda_sgd", "CudaSGDEngine", ("cuda",)),
    "svdpp": ("deepmf.training.engines.numba_svdpp", "NumbaSVDppEngine", ("cpu",)),
    "gibbs": ("deepmf.training.engines.gibbs", "GibbsEngine", ("cpu",)),
    "gibbs-torch": ("deepmf.training.engines.gibbs_torch", "TorchGibbsEngine", ("cpu", "cuda")),
    "autorec": ("deepmf.training.engines.autorec", "AutoRecEngine", ("cpu", "cuda")),
    "blend": ("deepmf.training.engines.blend", "BlendEngine", ("cpu", "cuda")),
}


# Engines written in Triton: its interpreter (TRITON_INTERPRET=1) runs them on CPU tensors, which is how CI
# tests them. An explicit request may then use the CPU; "auto" never picks them there.
_TRITON_ENGINES = ("cuda-sgd",)


def runs_on(name: str, device: torch.device) -> bool:
    """Whether engine ``name`` can run on ``device`` (Triton engines also on the CPU under the interpreter)."""
    if device.type in ENGINES[name][2]:
        return True
    interpreted = os.environ.get("TRITON_INTERPRET", "0").strip() == "1"
    return name in _TRITON_ENGINES and device.type == "cpu" and interpreted


def select_engine(model: RatingModel, config: TrainConfig, device: torch.device) -> str:
    """Name of the engine to train ``model`` with: the configured one, or the model's first that runs here."""
    allowed: tuple[str, ...] = getattr(model, "engines", ("torch",))
    if config.engine != "auto":
        if config.engine not in allowed:
            raise ConfigError(f"engine {config.engine!r} cannot train model {model.name!r} "
                              f"(it supports: {', '.join(allowed)})")
        if not runs_on(config.engine, device):
            raise ConfigError(f"engine {config.engine!r} does not run on {device.type}")
        return config.engine
    for name in allowed:
        if (device.type in ENGINES[name][2] and not _asks_for_torch_only_options(name, model, config)
                and _fits(name, model)):
            return name
    raise ConfigError(f"no engine can train model {model.name!r} on {device.type}")


def place(model: RatingModel, config: TrainConfig, n_ratings: int) -> tuple[torch.device, str]:
    """(device, engine) to train ``model`` on ``n_ratings`` ratings: the one place that decides both.

    A device named by ``config.device`` or ``$DEEPMF_DEVICE`` is used as given. "auto" without CUDA is the
    CPU. "auto" with CUDA compares the engine the model would use on the GPU with the one it would use on the
    CPU and takes the GPU only where ``deepmf.device.gpu_pays_off`` expects it to be faster (MF on ML-100K,
    say, stays on the numba CPU engine); an engine named in ``config.engine`` decides the device by where it
    runs.

    Raises:
        ConfigError: an unknown device, CUDA asked for without CUDA, or no engine can train the model there.
    """
    if not auto_device_requested(config.device) or not torch.cuda.is_available():
        device = resolve_device(config.device)
        return device, select_engine(model, config, device)
    gpu, cpu = resolve_device("cuda"), torch.device("cpu")
    choices = {}
    for device in (gpu, cpu):
        try:
            choices[device.type] = select_engine(model, config, device)
        except ConfigError:
            continue
    if not choices:  # neither works: let the GPU's refusal say why
        select_engine(model, config, gpu)
    if "cuda" in choices and ("cpu" not in choices or gpu_pays_off(choices["cuda"], choices["cpu"], n_ratings)):
        return gpu, choices["cuda"]
    return cpu, choices["cpu"]


# The largest latent dimension the cuda-sgd kernel holds in one tile; "auto" passes larger MF to the next engine.
CUDA_SGD_MAX_FACTORS = 256


def _fits(engine: str, model: RatingModel) -> bool:
    """Whether the model's shapes fit the engine (only cuda-sgd has a limit)."""
    if engine != "cuda-sgd":
        return True
    factors = getattr(getattr(model, "config", None), "factors", 0)
    return factors <= CUDA_SGD_MAX_FACTORS


# The compiled SGD engines run plain SGD with per-row L2: they cannot honour another optimizer or weight decay.
_SGD_ENGINES = ("numba", "svdpp", "cuda-sgd")


def check_plain_sgd(engine: str, config: TrainConfig) -> None:
    """Refuse options a compiled per-rating SGD engine cannot honour (rather than ignore them silently).

    Raises:
        ConfigError: weight decay or a learning-rate schedule is set.
    """
    if config.weight_decay > 0:
        raise ConfigError(f"the {engine} engine regularizes with l2, not weight_decay: set weight_decay to 0")
    if config.lr_schedule != "none":
        raise ConfigError(f"the {engine} engine uses a constant learning rate; lr_schedule "
                          f"{config.lr_schedule!r} needs the torch engine")


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
