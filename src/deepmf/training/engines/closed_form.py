"""Engine "closed": models fitted in one closed-form step (EASE, the popularity baseline).

The model's own ``solve(train)`` holds the math; the engine runs it once, as the run's only epoch, so these
models get the Trainer's bookkeeping (timing, validation NDCG, history, checkpoints) like any other.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numba
import torch

import deepmf.training.engines.numba_mf  # noqa: F401 - sets numba's threading layer before its pool starts
from deepmf.device import default_cpu_threads
from deepmf.errors import ConfigError

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.base import RatingModel
    from deepmf.training.config import TrainConfig


class ClosedFormEngine:
    """Engine "closed": one call of ``model.solve(train)``.

    It runs one epoch and reads no optimisation option; ``deepmf.training.engines.ENGINES`` refuses more epochs
    and such options before it is built.

    Raises:
        ConfigError: the model has no closed form, or no interactions.
    """

    name = "closed"

    def __init__(self, model: RatingModel, train: Ratings, config: TrainConfig, device: torch.device) -> None:
        if not callable(getattr(model, "solve", None)):
            raise ConfigError(f"model {getattr(model, 'name', model)!r} has no closed-form solution")
        if len(train) == 0:
            raise ConfigError("no training interactions")
        self.model = model.to(device)
        self.train = train
        # Measured on this project's 2-core machine under load (bench/implicit.py): EASE's inverse on ML-100K
        # took 0.55 s on one thread and 5.6 s on two; like the other CPU engines it uses one thread on small
        # data unless told otherwise.
        self.threads = config.threads or default_cpu_threads(len(train))

    def train_epoch(self, epoch: int) -> float:
        """Solve; there is no training loss to report (NaN)."""
        previous = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
        try:
            self.model.solve(self.train)  # type: ignore[operator]
        finally:
            torch.set_num_threads(previous)
        return float("nan")

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Nothing to restore: the solution is in the model."""
