"""The short Python API: load, split, fit. Everything here is a thin layer over the modules it names.

    import deepmf
    data = deepmf.load("ml-100k")
    split = deepmf.split(data, "u1")
    rec = deepmf.fit(split.train, model="mf", factors=64)
    rec.evaluate(split.test)          # RMSE, MAE, precision@10, NDCG@10, ...
    rec.recommend(1, n=10)            # raw ids and titles in, raw ids and titles out
"""

from __future__ import annotations

import os
from dataclasses import fields
from typing import Any

import pandas as pd

from deepmf.data.loading import load
from deepmf.data.ratings import Ratings
from deepmf.data.splits import Split, parse_split
from deepmf.errors import ConfigError
from deepmf.experiment import carve_validation, train_config_for
from deepmf.recommender import Recommender
from deepmf.training.config import TrainConfig
from deepmf.training.fit import train_model

_TRAIN_OPTIONS = frozenset(f.name for f in fields(TrainConfig))


def as_ratings(data: object) -> Ratings:
    """``data`` itself when it is Ratings; ``deepmf.load(data)`` for what load takes (an edition name, a path, a
    DataFrame whose columns it recognises); ConfigError for anything else."""
    if isinstance(data, Ratings):
        return data
    if isinstance(data, (str, os.PathLike, pd.DataFrame)):
        return load(data)
    raise ConfigError(
        f"expected Ratings (from deepmf.load), an edition name, a path or a DataFrame, not {type(data).__name__}"
    )


def split(data: Ratings | pd.DataFrame | str | os.PathLike[str], spec: str = "random:0.2", seed: int = 0) -> Split:
    """One train/test split of ``data`` named by ``spec`` ("u1", "random:0.2", "user:leave1", "time:0.1", ...).

    ``data`` is Ratings, or anything ``deepmf.load`` takes (loaded first). Use
    ``deepmf.data.splits.parse_split`` for specs that give several splits ("kfold:5", "canonical").

    Raises:
        ConfigError: the spec or seed is malformed, the spec names several splits, ``data`` is of a wrong type.
        DataError: ``data`` could not be loaded, or cannot be split that way.
    """
    data = as_ratings(data)
    splits = parse_split(spec, data, seed=seed)
    if len(splits) != 1:
        raise ConfigError(f"split {spec!r} gives {len(splits)} splits; use deepmf.data.splits.parse_split")
    return splits[0]


def fit(
    train: Ratings | pd.DataFrame | str | os.PathLike[str],
    model: str = "mf",
    *,
    valid_fraction: float | None = None,
    progress: bool = False,
    **options: Any,
) -> Recommender:
    """Train ``model`` on ``train`` and wrap it in a Recommender.

    ``train`` is Ratings, or anything ``deepmf.load`` takes (a DataFrame with user/item/rating columns, a
    file): it is loaded first, and all of it trains the model.
    ``options`` mixes model options (``factors``, ``layers``, ``dropout``, ``features``, ``head``...) and training
    options (any TrainConfig field: ``lr``, ``epochs``, ``optimizer``, ``seed``, ``device``...); a model's tuned
    defaults fill the rest. A validation share of ``train`` (``valid_fraction``, 0 for none) is carved off for
    early stopping; by default 5 % when the model stops early (patience > 0) or steps its LR on plateaus, and
    none otherwise (Bayesian MF, the blend). Every training rating still counts as seen by its user.

    Raises:
        ConfigError: unknown model or option, an invalid value, ``train`` of a wrong type.
        DataError: ``train`` could not be loaded.
        ResourceError: the model would not fit in memory (refused before allocating it).
    """
    train = as_ratings(train)
    if not isinstance(model, str):
        raise ConfigError(f"model must be a model name such as 'mf', got {type(model).__name__} {model!r}")
    train_options = {key: value for key, value in options.items() if key in _TRAIN_OPTIONS}
    model_options = {key: value for key, value in options.items() if key not in _TRAIN_OPTIONS}
    config = train_config_for(model, train_options, train.feedback)
    fit_part, valid = carve_validation(train, valid_fraction, config)
    trained = train_model(model, train, fit_part, valid, model_options, config, progress=progress)
    return Recommender.from_trained(trained, train, train)
