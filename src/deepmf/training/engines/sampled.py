"""Engine "sampled": NCF's training of a deep model on implicit feedback (He et al. 2017).

Every epoch pairs each training interaction (label 1) with ``negatives`` items drawn uniformly from the
items its user never interacted with (label 0; ``negatives.draw_negatives``, never a positive), fresh each
epoch, and runs the minibatch torch engine over those labelled pairs with the model's binary cross-entropy
loss: the optimizer, batching, bfloat16 autocast and shuffling are the torch engine's own.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from deepmf.data.ratings import RatingTensors
from deepmf.errors import ConfigError
from deepmf.training.engines.negatives import draw_negatives, positives_csr
from deepmf.training.engines.torch_engine import TorchEngine

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.base import RatingModel
    from deepmf.training.config import TrainConfig

DEFAULT_NEGATIVES = 4  # NCF's choice


class SampledEngine(TorchEngine):
    """Engine "sampled" (see the module docstring): uses every option of the torch engine, plus
    ``config.negatives`` (default 4) and ``config.seed`` for the negatives.

    Raises:
        ConfigError: the model is not trained with loss bce, or as the torch engine.
    """

    name = "sampled"

    def __init__(self, model: RatingModel, train: Ratings, config: TrainConfig, device: torch.device) -> None:
        if getattr(getattr(model, "config", None), "loss", None) != "bce":
            raise ConfigError(f"the sampled engine trains models with loss bce, not {getattr(model, 'name', model)!r}")
        super().__init__(model, train, config, device)
        self.negatives = config.negatives or DEFAULT_NEGATIVES
        self.users = np.ascontiguousarray(train.users, dtype=np.int32)
        self.items = np.ascontiguousarray(train.items, dtype=np.int32)
        self.n_items = train.n_items
        self.indptr, self.seen = positives_csr(self.users, self.items, train.n_users)
        self.rng = np.random.default_rng(config.seed)
        self.positives = self.data

    def train_epoch(self, epoch: int) -> float:
        """One pass over the positives and a fresh draw of negatives; returns the mean BCE of the pass."""
        users = np.repeat(self.users, self.negatives)
        negatives = draw_negatives(self.indptr, self.seen, users, self.n_items,
                                   np.uint64(self.rng.integers(0, 2**63)))
        keep = negatives >= 0  # a user who interacted with every item has no negative
        device = self.device
        positives = self.positives
        self.data = RatingTensors(
            torch.cat([positives.users, torch.from_numpy(users[keep].astype(np.int64)).to(device)]),
            torch.cat([positives.items, torch.from_numpy(negatives[keep].astype(np.int64)).to(device)]),
            torch.cat([torch.ones_like(positives.ratings), torch.zeros(int(keep.sum()), device=device)]),
        )
        self.n = len(self.data)
        # The torch engine reports the root of its mean loss (an RMSE for squared error): square it back.
        return super().train_epoch(epoch) ** 2

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "negatives_rng": json.dumps(self.rng.bit_generator.state)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict({key: value for key, value in state.items() if key != "negatives_rng"})
        self.rng.bit_generator.state = json.loads(state["negatives_rng"])
