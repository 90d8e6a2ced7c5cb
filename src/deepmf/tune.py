"""Hyperparameter search with Optuna, on validation ratings carved from the training part of each split.

``tune(data, splits, model, trials)`` samples model and training options from the model's search space,
trains on each split's training part minus a validation carve, and scores the trial by the mean validation
RMSE over the splits (each run's best epoch, as early stopping would keep); for implicit feedback by the mean
validation NDCG@10 (full ranking; the carve is a share of each user's interactions), maximised. Test ratings
are never read: a split's test part is not even looked at. The best trial becomes a run config
``{"model": ..., "model_options": {...}, "train_options": {...}, "tuned_on": {...}}`` that
``deepmf train --config`` reads; ``tuned_on`` names the data, split and seed searched on, so training on another
split (whose test ratings the search may have validated on) gets a warning.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from deepmf.data.ratings import Ratings
from deepmf.data.splits import Split, check_seed, validation_split
from deepmf.errors import ConfigError
from deepmf.extras import require
from deepmf.folders import TUNE_STAMP, is_tuned_config
from deepmf.fsutil import write_file

if TYPE_CHECKING:
    import optuna

Options = tuple[dict[str, Any], dict[str, Any]]
# Share of each training part carved off as validation.
DEFAULT_VALID_FRACTION = 0.1


def _mf(trial: optuna.Trial) -> Options:
    return ({"factors": trial.suggest_int("factors", 8, 256, log=True)},
            {"lr": trial.suggest_float("lr", 1e-3, 5e-2, log=True),
             "l2": trial.suggest_float("l2", 1e-3, 0.3, log=True)})


def _deep(trial: optuna.Trial) -> Options:
    width = trial.suggest_categorical("width", [32, 64, 128])
    depth = trial.suggest_int("depth", 1, 3)
    return ({"factors": trial.suggest_int("factors", 8, 128, log=True), "layers": [width] * depth,
             "dropout": trial.suggest_float("dropout", 0.0, 0.5)},
            {"lr": trial.suggest_float("lr", 1e-4, 3e-2, log=True),
             "l2": trial.suggest_float("l2", 1e-3, 1.0, log=True)})


def _svdpp(trial: optuna.Trial) -> Options:
    return ({"factors": trial.suggest_int("factors", 10, 200, log=True)},
            {"lr": trial.suggest_float("lr", 5e-4, 2e-2, log=True),
             "l2": trial.suggest_float("l2", 5e-3, 0.3, log=True)})


def _bayes(trial: optuna.Trial) -> Options:
    # Priors are sampled: only the shape of the model is searched, not any regularization.
    return ({"rank": trial.suggest_int("rank", 4, 32, log=True),
             "implicit_user": trial.suggest_categorical("implicit_user", [True, False]),
             "implicit_item": trial.suggest_categorical("implicit_item", [True, False])}, {})


def _autorec(trial: optuna.Trial) -> Options:
    return ({"hidden": trial.suggest_int("hidden", 100, 1000, log=True)},
            {"lr": trial.suggest_float("lr", 1e-3, 5e-2, log=True),
             "l2": trial.suggest_float("l2", 1.0, 1000.0, log=True)})


def _deep_bce(trial: optuna.Trial) -> Options:
    # NCF-style training needs far less L2 than rating regression, and the number of sampled negatives matters
    # (He et al. 2017 studied 1 to 10).
    width = trial.suggest_categorical("width", [32, 64, 128])
    depth = trial.suggest_int("depth", 1, 3)
    return ({"factors": trial.suggest_int("factors", 8, 128, log=True), "layers": [width] * depth,
             "dropout": trial.suggest_float("dropout", 0.0, 0.5)},
            {"lr": trial.suggest_float("lr", 3e-4, 3e-2, log=True),
             "l2": trial.suggest_float("l2", 1e-6, 1e-2, log=True),
             "negatives": trial.suggest_int("negatives", 1, 8)})


def _bpr(trial: optuna.Trial) -> Options:
    # Steps above ~0.1 left BPR at the popularity ranking on ml-latest-small (bench/implicit.py): not searched.
    return ({"factors": trial.suggest_int("factors", 16, 256, log=True)},
            {"lr": trial.suggest_float("lr", 5e-3, 0.1, log=True),
             "l2": trial.suggest_float("l2", 1e-4, 0.05, log=True)})


def _ials(trial: optuna.Trial) -> Options:
    # Rendle et al. 2021 tune the dimension, reg and the unobserved weight alpha0 (with nu = 1).
    return ({"factors": trial.suggest_int("factors", 16, 256, log=True),
             "reg": trial.suggest_float("reg", 1e-4, 1.0, log=True),
             "alpha0": trial.suggest_float("alpha0", 1e-3, 3.0, log=True)}, {})


def _ease(trial: optuna.Trial) -> Options:
    return ({"reg": trial.suggest_float("reg", 1.0, 1e4, log=True)}, {})


SEARCH_SPACES: dict[str, Callable[[optuna.Trial], Options]] = {
    "mf": _mf, "deepmf": _deep, "neumf": _deep, "svdpp": _svdpp, "bayes": _bayes, "autorec": _autorec,
    "bpr": _bpr, "ials": _ials, "ease": _ease,
}
# Where implicit feedback needs another space than ratings (deep models trained with loss bce).
IMPLICIT_SEARCH_SPACES: dict[str, Callable[[optuna.Trial], Options]] = {"deepmf": _deep_bce, "neumf": _deep_bce}


@dataclass
class TuneResult:
    """The outcome of a search.

    Attributes:
        model: registry name.
        best_score: the best trial's mean validation RMSE (lowest), or NDCG@10 for implicit feedback (highest).
        model_options: the best trial's model options.
        train_options: the best trial's training options (over the model's defaults).
        trials: every trial: number, validation score (key ``metric``), options.
        n_valid: validation ratings per split.
        tuned_on: the data, split and seed the search ran on (``{"data": ..., "split": ..., "seed": ...}``).
        metric: "val_rmse", or "val_ndcg" for implicit feedback.
    """

    model: str
    best_score: float
    model_options: dict[str, Any]
    train_options: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)
    n_valid: list[int] = field(default_factory=list)
    tuned_on: dict[str, Any] = field(default_factory=dict)
    metric: str = "val_rmse"

    @property
    def best_rmse(self) -> float:
        """The best mean validation RMSE (NaN when the search maximised NDCG)."""
        return self.best_score if self.metric == "val_rmse" else float("nan")

    def run_config(self) -> dict[str, Any]:
        """The best configuration in the ``--config`` file format."""
        return {"model": self.model, "model_options": self.model_options, "train_options": self.train_options,
                "tuned_on": self.tuned_on}

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write ``run_config()`` as JSON, atomically, stamped ``written_by`` so a later run may replace it.

        Raises:
            OutputError: ``path`` exists and is not a config deepmf tune wrote, or the system refused.
        """
        text = json.dumps({"written_by": TUNE_STAMP, **self.run_config()}, indent=2) + "\n"
        write_file(path, text.encode("utf-8"), ours=is_tuned_config)

    def to_dict(self) -> dict[str, Any]:
        return {**self.run_config(), f"best_{self.metric.removeprefix('val_')}": self.best_score,
                "metric": self.metric, "n_valid": self.n_valid, "trials": self.trials}


def tune(data: Ratings, splits: list[Split], model: str, trials: int, *,
         valid_fraction: float = DEFAULT_VALID_FRACTION, seed: int = 0, fixed_model: dict[str, Any] | None = None,
         fixed_train: dict[str, Any] | None = None,
         on_trial: Callable[[dict[str, Any]], None] | None = None, split_name: str | None = None) -> TuneResult:
    """Search ``model``'s options by Optuna's TPE sampler; see the module docstring.

    Args:
        data: the full data set (id maps shared by the splits).
        splits: the splits whose training parts are searched on (their test parts are never read).
        model: registry name of a model with a search space (see ``SEARCH_SPACES``).
        trials: number of trials.
        valid_fraction: share of each training part carved off as validation.
        seed: seeds the sampler, the carves and every training run.
        fixed_model: model options applied to every trial over the sampled ones (e.g. features, layers).
        fixed_train: training options applied to every trial over the sampled ones (e.g. epochs, threads).
        on_trial: called with each finished trial's record (for progress output).
        split_name: the spec the splits came from (for ``tuned_on``; default: the splits' names).

    Raises:
        ConfigError: unknown or untunable model, trials < 1, a bad fraction, or no splits.
    """
    from deepmf.experiment import train_config_for
    from deepmf.training.fit import train_model

    optuna = require("optuna", "hyperparameter search (deepmf tune)")
    if model not in SEARCH_SPACES:
        raise ConfigError(f"no search space for model {model!r}: "
                          f"tune one of {', '.join(sorted(SEARCH_SPACES))}")
    if trials < 1:
        raise ConfigError(f"trials must be >= 1, got {trials}")
    if not 0 < valid_fraction < 1:
        raise ConfigError(f"validation fraction must be in (0, 1), got {valid_fraction}")
    if not splits:
        raise ConfigError("tune needs at least one split")
    check_seed(seed)
    carves = [validation_split(split.train, valid_fraction, seed=seed) for split in splits]
    metric = "val_ndcg" if data.feedback == "implicit" else "val_rmse"
    space = (IMPLICIT_SEARCH_SPACES if metric == "val_ndcg" else {}).get(model, SEARCH_SPACES[model])
    records: list[dict[str, Any]] = []
    best_of = max if metric == "val_ndcg" else min

    def objective(trial: optuna.Trial) -> float:
        model_options, train_options = space(trial)
        model_options = {**model_options, **(fixed_model or {})}
        train_options = {**train_options, **(fixed_train or {}), "seed": seed}
        config = train_config_for(model, train_options, data.feedback)
        scores = []
        for fit_part, valid in carves:
            result = train_model(model, data, fit_part, valid, model_options, config, progress=False).result
            val = [getattr(r, metric) for r in result.history if getattr(r, metric) is not None]
            scores.append(best_of(val, default=-math.inf if metric == "val_ndcg" else math.inf))
        score = float(sum(scores) / len(scores))
        trial.set_user_attr("model_options", model_options)
        trial.set_user_attr("train_options", train_options)
        record = {"trial": trial.number, metric: score, "model_options": model_options,
                  "train_options": train_options}
        records.append(record)
        if on_trial is not None:
            on_trial(record)
        return score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    direction = "maximize" if metric == "val_ndcg" else "minimize"
    study = optuna.create_study(direction=direction, sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    best = study.best_trial
    tuned_on = {"data": data.name, "split": split_name or ",".join(s.name for s in splits), "seed": seed}
    return TuneResult(model, float(best.value), dict(best.user_attrs["model_options"]),
                      dict(best.user_attrs["train_options"]), records, [len(v) for _, v in carves], tuned_on,
                      metric)
