"""An optional TensorBoard log of a run's per-epoch history (``deepmf train --tensorboard DIR``).

Needs the ``tensorboard`` package (``pip install 'deepmf[tensorboard]'``); torch's own ``SummaryWriter``
writes the event files. Each epoch adds the scalars ``rmse/train``, ``rmse/validation`` (when there are
validation ratings; for implicit feedback ``loss/train`` and ``ndcg/validation`` instead),
``speed/ratings_per_second`` and ``time/epoch_seconds`` at step = epoch. Event files get
new unique names inside DIR, so nothing there is ever overwritten.
"""

from __future__ import annotations

import os
from types import TracebackType
from typing import TYPE_CHECKING

from deepmf.extras import require

if TYPE_CHECKING:
    from deepmf.training.trainer import EpochRecord


class TensorBoardLog:
    """A Trainer ``on_epoch`` callback writing each EpochRecord to TensorBoard; use it as a context manager.

    Args:
        log_dir: the folder TensorBoard reads (``tensorboard --logdir``).
        comment: added to the event file name (e.g. the model).

    Raises:
        MissingDependencyError: tensorboard is not installed.
    """

    def __init__(self, log_dir: str | os.PathLike[str], comment: str = "") -> None:
        require("tensorboard", "a TensorBoard log (--tensorboard)")
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(log_dir), filename_suffix=f".{comment}" if comment else "")

    def __call__(self, record: EpochRecord) -> None:
        for tag, value in (("rmse/train", record.train_rmse), ("rmse/validation", record.val_rmse),
                           ("loss/train", record.train_loss), ("ndcg/validation", record.val_ndcg)):
            if value is not None:
                self.writer.add_scalar(tag, value, record.epoch)
        self.writer.add_scalar("speed/ratings_per_second", record.ratings_per_second, record.epoch)
        self.writer.add_scalar("time/epoch_seconds", record.seconds, record.epoch)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()

    def __enter__(self) -> TensorBoardLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()
