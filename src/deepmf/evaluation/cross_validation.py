"""Cross-validation: one model trained and tested per split, each fold reported, then mean ± std.

Like scikit-surprise's ``cross_validate``: the standard deviation is the population one (``ddof=0``) over
folds. Works with any list of splits: ``kfold:5``, the canonical ML-100K ``u1..u5`` ("canonical"), or a
single split (then the std is 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepmf.data.ratings import Ratings
from deepmf.data.splits import Split
from deepmf.errors import ConfigError
from deepmf.training.config import TrainConfig

# Per-fold numbers that are averaged (accuracy only exists for a classification head).
SUMMARY_KEYS = (
    "rmse",
    "mae",
    "accuracy",
    "precision",
    "recall",
    "ndcg",
    "map",
    "hit_rate",
    "coverage",
    "train_seconds",
    "seconds",
)


@dataclass
class CrossValidationResult:
    """Per-fold rows and their mean and standard deviation.

    Attributes:
        model_name: registry name.
        folds: one row per split: split, n_train, n_test, cold counts, the metrics, train_seconds, seconds.
    """

    model_name: str
    folds: list[dict[str, Any]]

    def _column(self, key: str) -> np.ndarray | None:
        values = [row.get(key) for row in self.folds]
        if any(v is None for v in values):
            return None
        return np.asarray(values, dtype=np.float64)

    @property
    def mean(self) -> dict[str, float]:
        """Mean over folds of every metric all folds have."""
        columns = {key: self._column(key) for key in SUMMARY_KEYS}
        return {key: float(values.mean()) for key, values in columns.items() if values is not None}

    @property
    def std(self) -> dict[str, float]:
        """Population standard deviation over folds (as scikit-surprise reports it)."""
        columns = {key: self._column(key) for key in SUMMARY_KEYS}
        return {key: float(values.std()) for key, values in columns.items() if values is not None}

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model_name, "folds": self.folds, "mean": self.mean, "std": self.std}


def fold_row(result: Any) -> dict[str, Any]:
    """The per-fold row of an ExperimentResult: split, sizes, cold counts, test metrics and timings."""
    summary = result.recommender.summary
    return {
        **result.split_record,
        **result.metrics,
        "epochs_run": summary.get("epochs_run"),
        "engine": summary.get("engine"),
        "threads": summary.get("threads"),
        "train_seconds": summary.get("train_seconds"),
        "seconds": result.seconds,
    }


def cross_validate(
    data: Ratings,
    splits: Sequence[Split],
    model_name: str,
    model_options: dict[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    *,
    on_fold: Callable[[Any], None] | None = None,
    **experiment_kwargs: Any,
) -> CrossValidationResult:
    """Train and test one model per split.

    Args:
        data: the full data set.
        splits: the folds (e.g. ``parse_split("kfold:5", data)``).
        model_name: registry name.
        model_options: model options.
        train_config: training options (the model's defaults when None).
        on_fold: called with each fold's ExperimentResult as soon as it is done (progress, saving).
        **experiment_kwargs: passed to ``run_experiment`` (valid_fraction, k, relevant_threshold,
            progress, ...).

    Raises:
        ConfigError: no splits.
    """
    from deepmf.experiment import run_experiment

    if not splits:
        raise ConfigError("cross-validation needs at least one split")
    rows = []
    for split in splits:
        result = run_experiment(data, split, model_name, model_options, train_config, **experiment_kwargs)
        rows.append(fold_row(result))
        if on_fold is not None:
            on_fold(result)
    return CrossValidationResult(model_name, rows)
