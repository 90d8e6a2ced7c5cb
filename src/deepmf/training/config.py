"""Training hyperparameters shared by every engine, validated on construction."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from deepmf.data.splits import check_seed
from deepmf.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "sparse_adam")
LR_SCHEDULES = ("none", "cosine", "step", "plateau")
ENGINE_NAMES = ("auto", "torch", "numba", "cuda-sgd", "gibbs", "gibbs-torch", "autorec", "svdpp", "blend", "bpr",
                "ials", "closed", "sampled")
# More threads than any machine deepmf runs on has; beyond it, starting the threads exhausts the process (torch
# starts one OpenMP thread each, the numba MF engine schedules threads x threads blocks per sub-epoch).
MAX_THREADS = 1024


@dataclass
class TrainConfig:
    """How to train. Model shapes and architecture live in the model's own config, not here.

    Attributes:
        optimizer: one of OPTIMIZERS (torch engine); what each engine honours is in
            ``deepmf.training.engines.ENGINES``.
        lr: learning rate.
        weight_decay: optimizer weight decay (applies to all parameters every step).
        l2: per-batch L2 penalty on the embedding rows the batch used (the classic MF regularizer; the numba
            engine's ``reg``).
        momentum: for SGD and RMSprop.
        batch_size: ratings per step (torch engine).
        epochs: maximum number of epochs.
        patience: stop after this many epochs without a better validation RMSE, then restore the best
            weights; 0 disables early stopping.
        seed: one seed for initialization, shuffling and sampling.
        device: "auto", "cpu", "cuda" or "cuda:N"; "auto" puts each model where it trains faster (see
            ``deepmf.training.engines.place``).
        lr_schedule: one of LR_SCHEDULES.
        engine: one of ENGINE_NAMES; "auto" lets the model pick (numba for MF on CPU, cuda-sgd on CUDA).
        threads: torch/numba threads; None = chosen by measurement (``deepmf.device``): the torch engine uses
            ``default_torch_threads``, the Gibbs sampler and SVD++ ``default_cpu_threads``, the numba MF engine
            every core.
        sparse: use sparse embedding gradients where the optimizer supports them.
        gpu_batch_scaling: on CUDA only (torch engine), grow the batch with the data up to a device-sized batch,
            the learning rate by the square root of that growth, with a linear warm-up over the first epoch
            (see ``deepmf.training.engines.torch_engine.device_batch``); the values used are reported in the
            result's ``effective_options``. The CPU ignores it by design: its defaults are its own.
        negatives: sampled negatives per interaction and epoch for implicit feedback (the "bpr" engine: BPR
            triples, default 1; "sampled": NCF's label-0 pairs, default 4); None: the engine's default. Only
            those two engines honour it (``deepmf.training.engines.ENGINES``).
        chosen: the options the user set (command-line flags, a ``--config`` file, ``deepmf.fit`` keywords),
            as opposed to a model's tuned defaults; an engine must honour every chosen option or not be used
            (``deepmf.training.engines.select_engine``). None (a config built directly) counts every option
            whose value is neither this class's default nor the model's tuned default. Not an option itself:
            ``to_dict`` leaves it out.
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    weight_decay: float = 0.0
    l2: float = 0.0
    momentum: float = 0.9
    batch_size: int = 1024
    epochs: int = 20
    patience: int = 0
    seed: int = 0
    device: str = "auto"
    lr_schedule: str = "none"
    engine: str = "auto"
    threads: int | None = None
    sparse: bool = False
    gpu_batch_scaling: bool = False
    negatives: int | None = None
    chosen: frozenset[str] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._check_types()
        self.optimizer = self.optimizer.lower()
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
        for name in ("lr", "weight_decay", "l2", "momentum"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{_LABELS.get(name, name)} must be a finite number, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"learning rate must be positive, got {self.lr}")
        for name in ("weight_decay", "l2", "momentum"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {self.batch_size}")
        if self.epochs < 1:
            raise ConfigError(f"epochs must be >= 1, got {self.epochs}")
        if self.patience < 0:
            raise ConfigError(f"patience must be >= 0, got {self.patience}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ConfigError(f"unknown lr schedule {self.lr_schedule!r}: choose one of {', '.join(LR_SCHEDULES)}")
        if self.engine not in ENGINE_NAMES:
            raise ConfigError(f"unknown engine {self.engine!r}: choose one of {', '.join(ENGINE_NAMES)}")
        if self.threads is not None and not 1 <= self.threads <= MAX_THREADS:
            raise ConfigError(f"threads must be from 1 to {MAX_THREADS}, got {self.threads}")
        check_seed(self.seed)
        if self.negatives is not None and self.negatives < 1:
            raise ConfigError(f"negatives must be a positive integer, got {self.negatives!r}")
        if self.chosen is not None:
            self.chosen = frozenset(self.chosen)
            unknown = sorted(self.chosen - set(option_names()))
            if unknown:
                raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")

    def chosen_options(self, model_defaults: Mapping[str, Any] | None = None) -> frozenset[str]:
        """The options the user set (see ``chosen``); ``model_defaults`` are the model's tuned values."""
        if self.chosen is not None:
            return self.chosen
        plain, tuned = TrainConfig(), dict(model_defaults or {})
        return frozenset(name for name in option_names()
                         if getattr(self, name) != getattr(plain, name)
                         and (name not in tuned or getattr(self, name) != tuned[name]))

    def _check_types(self) -> None:
        """Each field has its declared type (a --config file or the Python API may pass anything); NumPy
        numbers become Python ones so the config stays JSON-able.

        Hand-written rather than a pydantic model: these dozen lines are all the type checking there is (the
        range checks in ``__post_init__`` are domain rules a model would need as validators anyway), errors
        must be one ``ConfigError`` line naming the option, and training should not need pydantic installed.
        """
        for name, kind in _TYPES.items():
            value = getattr(self, name)
            if value is None and name in ("threads", "negatives"):
                continue
            is_bool = isinstance(value, (bool, np.bool_))
            if is_bool != (kind is bool) or not (is_bool or isinstance(value, kind)):
                wanted = {numbers.Integral: "an integer", numbers.Real: "a number"}.get(kind, kind.__name__)
                raise ConfigError(f"{name} must be {wanted}, got {type(value).__name__} {value!r}")
            if kind in (bool, numbers.Integral):
                setattr(self, name, kind(value) if kind is bool else int(value))
            elif kind is numbers.Real and not isinstance(value, (int, float)):
                setattr(self, name, float(value))

    @property
    def steered_by_validation(self) -> bool:
        """Whether validation ratings change the result: early stopping (``patience``) or a plateau schedule."""
        return self.patience > 0 or self.lr_schedule == "plateau"

    def to_dict(self) -> dict[str, Any]:
        """The options as a JSON-able dict (``chosen`` is not an option and is left out)."""
        return {name: getattr(self, name) for name in option_names()}

    @classmethod
    def from_dict(cls, values: dict[str, Any], chosen: Iterable[str] | None = None) -> TrainConfig:
        """Build from a dict, refusing unknown keys (typos in a --config file are errors, not silently ignored).

        Args:
            values: option values (absent ones take the class defaults).
            chosen: which of them the user set (see the ``chosen`` attribute).
        """
        unknown = sorted(set(values) - set(option_names()))
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**values, chosen=None if chosen is None else frozenset(chosen))


_LABELS = {"lr": "learning rate"}
_TYPES: dict[str, type] = {
    "optimizer": str, "lr": numbers.Real, "weight_decay": numbers.Real, "l2": numbers.Real,
    "momentum": numbers.Real, "batch_size": numbers.Integral, "epochs": numbers.Integral,
    "patience": numbers.Integral, "seed": numbers.Integral, "device": str, "lr_schedule": str, "engine": str,
    "threads": numbers.Integral, "sparse": bool, "negatives": numbers.Integral,
}


def option_names() -> tuple[str, ...]:
    """Names of the training options (every TrainConfig field but ``chosen``)."""
    return tuple(f.name for f in fields(TrainConfig) if f.name != "chosen")
