"""Training hyperparameters shared by every engine, validated on construction."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from deepmf.errors import ConfigError

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "sparse_adam")
LR_SCHEDULES = ("none", "cosine", "step", "plateau")
ENGINE_NAMES = ("auto", "torch", "numba", "gibbs", "autorec", "svdpp", "blend", "bpr", "ials", "closed", "sampled")


@dataclass
class TrainConfig:
    """How to train. Model shapes and architecture live in the model's own config, not here.

    Attributes:
        optimizer: one of OPTIMIZERS (torch engine); the numba engine always runs plain SGD.
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
        device: "auto", "cpu", "cuda" or "cuda:N".
        lr_schedule: one of LR_SCHEDULES.
        engine: one of ENGINE_NAMES; "auto" lets the model pick (numba for MF on CPU).
        threads: torch/numba threads; None = all cores, except that the Gibbs sampler and SVD++ use one
            below ``deepmf.device.PARALLEL_FROM_RATINGS`` ratings (faster there, and reproducible).
        sparse: use sparse embedding gradients where the optimizer supports them.
        negatives: sampled negatives per interaction and epoch for implicit feedback (the "bpr" engine: BPR
            triples, default 1; "sampled": NCF's label-0 pairs, default 4); None: the engine's default.
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
    negatives: int | None = None

    def __post_init__(self) -> None:
        self.optimizer = self.optimizer.lower()
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}: choose one of {', '.join(OPTIMIZERS)}")
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
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"threads must be >= 1, got {self.threads}")
        if self.negatives is not None and (isinstance(self.negatives, bool) or not isinstance(self.negatives, int)
                                           or self.negatives < 1):
            raise ConfigError(f"negatives must be a positive integer, got {self.negatives!r}")

    @property
    def steered_by_validation(self) -> bool:
        """Whether validation ratings change the result: early stopping (``patience``) or a plateau schedule."""
        return self.patience > 0 or self.lr_schedule == "plateau"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a dict, refusing unknown keys (typos in a --config file are errors, not silently ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown training option(s): {', '.join(unknown)}")
        return cls(**values)
