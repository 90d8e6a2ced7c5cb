"""Training engines: how one epoch of updates is computed. The Trainer (training/trainer.py) owns everything else.

An engine runs one pass over the shuffled training ratings and updates the model's parameters in place; the
Trainer does epochs, validation, early stopping, progress, history and checkpoints, whatever the engine.

- "torch": minibatch PyTorch with any optimizer and any RatingModel (CPU or CUDA).
- "numba": compiled lock-free parallel SGD for biased MF on CPU (training/engines/numba_mf.py). It writes into
  the same parameter tensors as the torch MF (``tensor.numpy()`` shares memory), so the saved model is identical.
"""

from __future__ import annotations

from typing import Any, Protocol


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
