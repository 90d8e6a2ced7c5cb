"""Training engines: how one epoch of updates is computed. The Trainer (training/trainer.py) owns everything else.

An engine runs one pass over the (shuffled) training ratings and updates the model's parameters in place; the
Trainer does epochs, validation, early stopping, progress, history and checkpoints, whatever the engine.

- "torch": minibatch PyTorch with any optimizer and any RatingModel (CPU or CUDA).
- "numba": compiled lock-free parallel SGD for biased MF on CPU (training/engines/numba_mf.py). It writes into
  the same parameter tensors as the torch MF (``tensor.numpy()`` shares memory), so the saved model is identical.
- "cuda-sgd": the same SGD as "numba" as one Triton kernel per epoch on a CUDA GPU (training/engines/cuda_sgd.py).
- "gibbs", "gibbs-torch": Bayesian MF sampling, with numba kernels on the CPU or batched torch on any device.
- "autorec": full-batch AutoRec.
- implicit feedback: "bpr" (compiled BPR SGD), "ials" (compiled alternating conjugate-gradient solves),
  "closed" (closed-form models: EASE, popularity), "sampled" (the torch engine on positives plus sampled
  negatives, for deep models with loss bce).

Every engine class is constructed as ``Engine(model, train, config, device)`` with ``train`` a Ratings and
``config`` a TrainConfig. A model class lists the engines it can use in ``engines`` (class attribute, preferred
first); ``select_engine`` picks one for a device, and ``place`` picks the device too when it is "auto": with
CUDA present each model goes where it is expected to be faster (``deepmf.device.gpu_pays_off``). ``ENGINES``
says, for every engine and every training option, whether the engine honours it: an option the user chose is
never silently ignored. Either the model's next engine that honours it is used, and the choice says why
(``EngineChoice.note``, shown by the CLI and in ``--json`` as ``engine_note``), or it is an error.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol

import torch

from deepmf.device import auto_device_requested, gpu_pays_off, resolve_device
from deepmf.errors import ConfigError
from deepmf.training.config import TrainConfig, option_names

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.base import RatingModel


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


# The options the Trainer itself carries out, whatever the engine (unless an engine's spec says otherwise).
TRAINER_OPTIONS = frozenset({"epochs", "patience", "seed", "device", "engine", "threads"})
# Optimizers whose update has a momentum term (``momentum`` means nothing to the others).
MOMENTUM_OPTIMIZERS = ("sgd", "rmsprop")


@dataclass(frozen=True)
class EngineSpec:
    """Where an engine lives, where it runs, and what it does with every training option.

    Attributes:
        module, cls: the engine class, imported lazily (numba compiles only when used).
        devices: device types it runs on.
        reads: training options it honours besides ``TRAINER_OPTIONS``.
        implies: options it does not read, each with the value its algorithm amounts to (the numba engine's
            per-rating SGD is optimizer "sgd" at batch size 1 without momentum): choosing exactly that value
            is honoured, and the value is what the run records. Also overrides a Trainer option the engine
            pins (a blend is fitted in one epoch).
        reads_if: options it honours only in some configurations (momentum only with an optimizer that has
            one).
    """

    module: str
    cls: str
    devices: tuple[str, ...]
    reads: frozenset[str]
    implies: Mapping[str, Any] = field(default_factory=dict)
    reads_if: Mapping[str, Callable[[TrainConfig], bool]] = field(default_factory=dict)

    def honours(self, option: str, config: TrainConfig) -> bool:
        """Whether the engine carries out ``option`` as ``config`` sets it."""
        if option in self.reads_if:
            return self.reads_if[option](config)
        if option in self.implies:
            return getattr(config, option) == self.implies[option]
        return option in self.reads or option in TRAINER_OPTIONS

    def unused(self, config: TrainConfig) -> list[str]:
        """Options the engine neither reads nor implies a value for: their values in ``config`` do not apply."""
        return [name for name in option_names()
                if name not in self.implies and not self.honours(name, config)]

    def effective(self, config: TrainConfig) -> TrainConfig:
        """``config`` with the implied values filled in: what the run really does, for its record."""
        return replace(config, **{k: v for k, v in self.implies.items() if getattr(config, k) != v})


# What a constant-rate per-rating SGD engine amounts to, in the torch engine's terms.
_PER_RATING_SGD = {"optimizer": "sgd", "momentum": 0.0, "weight_decay": 0.0, "batch_size": 1,
                   "lr_schedule": "none", "sparse": False}
_NO_GRADIENT_OPTIONS = {"weight_decay": 0.0, "lr_schedule": "none", "sparse": False}

# Options only the engines that draw negatives for implicit feedback read.
_SAMPLING_OPTIONS = frozenset({"negatives"})

# Every engine and every training option, in one table: ``select_engine`` never lets a chosen option go unheard.
ENGINES: dict[str, EngineSpec] = {
    # Any optimizer, schedule, batch size; momentum only where the optimizer has one.
    "torch": EngineSpec("deepmf.training.engines.torch_engine", "TorchEngine", ("cpu", "cuda"),
                        frozenset(option_names()) - _SAMPLING_OPTIONS,
                        reads_if={"momentum": lambda config: config.optimizer in MOMENTUM_OPTIMIZERS}),
    # Per-rating SGD with per-row L2 (lr, l2 = reg).
    "numba": EngineSpec("deepmf.training.engines.numba_mf", "NumbaMFEngine", ("cpu",),
                        frozenset({"lr", "l2"}), _PER_RATING_SGD),
    # The numba engine's update as a Triton kernel on the GPU (lock-free, one program per rating).
    "cuda-sgd": EngineSpec("deepmf.training.engines.cuda_sgd", "CudaSGDEngine", ("cuda",),
                           frozenset({"lr", "l2"}), _PER_RATING_SGD),
    "svdpp": EngineSpec("deepmf.training.engines.numba_svdpp", "NumbaSVDppEngine", ("cpu",),
                        frozenset({"lr", "l2"}), _PER_RATING_SGD),
    # Sampling: no learning rate, penalty, optimizer or batches.
    "gibbs": EngineSpec("deepmf.training.engines.gibbs", "GibbsEngine", ("cpu",), frozenset(),
                        _NO_GRADIENT_OPTIONS),
    "gibbs-torch": EngineSpec("deepmf.training.engines.gibbs_torch", "TorchGibbsEngine", ("cpu", "cuda"),
                              frozenset(), _NO_GRADIENT_OPTIONS),
    # Full-batch Rprop: lr is its initial step, l2 its weight penalty; no other optimizer, no batches.
    "autorec": EngineSpec("deepmf.training.engines.autorec", "AutoRecEngine", ("cpu", "cuda"),
                          frozenset({"lr", "l2"}), _NO_GRADIENT_OPTIONS),
    # One epoch that trains every member with its own tuned options; only seed and threads pass down.
    "blend": EngineSpec("deepmf.training.engines.blend", "BlendEngine", ("cpu", "cuda"), frozenset(),
                        {**_NO_GRADIENT_OPTIONS, "epochs": 1, "patience": 0}),
    # Implicit feedback. BPR: per-triple SGD with per-row L2, ``negatives`` triples per interaction.
    "bpr": EngineSpec("deepmf.training.engines.numba_bpr", "NumbaBPREngine", ("cpu",),
                      frozenset({"lr", "l2"}) | _SAMPLING_OPTIONS, _PER_RATING_SGD),
    # Alternating least squares: no gradient, no penalty but the model's own reg.
    "ials": EngineSpec("deepmf.training.engines.ials", "IALSEngine", ("cpu",), frozenset(),
                       {**_NO_GRADIENT_OPTIONS, "l2": 0.0}),
    # One closed-form solve (EASE, popularity): one epoch, nothing to stop early.
    "closed": EngineSpec("deepmf.training.engines.closed_form", "ClosedFormEngine", ("cpu", "cuda"), frozenset(),
                         {**_NO_GRADIENT_OPTIONS, "l2": 0.0, "epochs": 1, "patience": 0}),
    # The torch engine over positives and freshly drawn negatives (deep models with loss bce).
    "sampled": EngineSpec("deepmf.training.engines.sampled", "SampledEngine", ("cpu", "cuda"),
                          frozenset(option_names()),
                          reads_if={"momentum": lambda config: config.optimizer in MOMENTUM_OPTIMIZERS}),
}


# Engines written in Triton: its interpreter (TRITON_INTERPRET=1) runs them on CPU tensors, which is how CI
# tests them. An explicit request may then use the CPU; "auto" never picks them there.
_TRITON_ENGINES = ("cuda-sgd",)
# The largest latent dimension the cuda-sgd kernel holds in one tile; "auto" passes larger MF to the next engine.
CUDA_SGD_MAX_FACTORS = 256


def runs_on(name: str, device: torch.device) -> bool:
    """Whether engine ``name`` can run on ``device`` (Triton engines also on the CPU under the interpreter)."""
    if device.type in ENGINES[name].devices:
        return True
    interpreted = os.environ.get("TRITON_INTERPRET", "0").strip() == "1"
    return name in _TRITON_ENGINES and device.type == "cpu" and interpreted


def _fits(engine: str, model: RatingModel) -> bool:
    """Whether the model's shapes fit the engine (only cuda-sgd has a limit)."""
    if engine != "cuda-sgd":
        return True
    factors = getattr(getattr(model, "config", None), "factors", 0)
    return factors <= CUDA_SGD_MAX_FACTORS


@dataclass(frozen=True)
class EngineChoice:
    """The engine that will train a model, and the training options as it will carry them out.

    Attributes:
        name: the engine.
        config: the options with the engine's implied values filled in (what the run records).
        unused: options the engine does not read (their values do not apply; none of them was chosen).
        note: why a model's preferred engine was passed over ("" when it was not).
    """

    name: str
    config: TrainConfig
    unused: tuple[str, ...]
    note: str = ""


def unheard(engine: str, config: TrainConfig, chosen: Iterable[str]) -> list[str]:
    """The chosen options ``engine`` would not carry out, as ``name=value`` strings."""
    spec = ENGINES[engine]
    return [f"{name}={getattr(config, name)}" for name in option_names()
            if name in chosen and not spec.honours(name, config)]


def select_engine(model: RatingModel, config: TrainConfig, device: torch.device) -> EngineChoice:
    """The engine to train ``model`` with: the configured one, or the model's first that runs here and honours
    every chosen option (``config.chosen_options``). An option no suitable engine honours is an error.

    Raises:
        ConfigError: the named engine cannot train the model, does not run on ``device`` or cannot honour a
            chosen option; or no engine of the model can.
    """
    allowed: tuple[str, ...] = getattr(model, "engines", ("torch",))
    chosen = config.chosen_options(getattr(model, "default_train", {}))
    if config.engine != "auto":
        if config.engine not in allowed:
            raise ConfigError(f"engine {config.engine!r} cannot train model {model.name!r} "
                              f"(it supports: {', '.join(allowed)})")
        if not runs_on(config.engine, device):
            raise ConfigError(f"engine {config.engine!r} does not run on {device.type}")
        candidates = [config.engine]
    else:
        candidates = [name for name in allowed if device.type in ENGINES[name].devices and _fits(name, model)]
        if not candidates:
            raise ConfigError(f"no engine can train model {model.name!r} on {device.type}")
    passed_over: list[str] = []
    for name in candidates:
        refused = unheard(name, config, chosen)
        if not refused:
            spec = ENGINES[name]
            return EngineChoice(name, spec.effective(config), tuple(spec.unused(config)), "; ".join(passed_over))
        passed_over.append(f"the {name} engine cannot honour {', '.join(refused)}")
    raise ConfigError(f"model {model.name!r}: {'; '.join(passed_over)}")


def place(model: RatingModel, config: TrainConfig, n_ratings: int) -> tuple[torch.device, EngineChoice]:
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
    choices: dict[str, EngineChoice] = {}
    for device in (gpu, cpu):
        try:
            choices[device.type] = select_engine(model, config, device)
        except ConfigError:
            continue
    if not choices:  # neither works: let the GPU's refusal say why
        select_engine(model, config, gpu)
    if "cuda" in choices and (
        "cpu" not in choices or gpu_pays_off(choices["cuda"].name, choices["cpu"].name, n_ratings)
    ):
        return gpu, choices["cuda"]
    return cpu, choices["cpu"]


def create_engine(name: str, model: RatingModel, train: Ratings, config: TrainConfig,
                  device: torch.device) -> Engine:
    spec = ENGINES[name]
    engine_class = getattr(importlib.import_module(spec.module), spec.cls)
    return engine_class(model, train, config, device)
