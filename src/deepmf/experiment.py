"""One honest experiment: split -> validation carved from training -> train -> Recommender -> test metrics.

Used by the ``train``, ``evaluate``, ``compare`` and ``demo`` commands. The test part of a split is read once,
at the end, by ``Recommender.evaluate``; early stopping and any tuning only ever see the validation ratings
carved from the training part (for implicit feedback, a share of each user's training interactions).
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deepmf.data.ratings import Ratings
from deepmf.data.splits import Split, validation_split
from deepmf.errors import ConfigError
from deepmf.recommender import Evaluation, Recommender
from deepmf.training.config import TrainConfig

# Validation share carved from training when the model stops early (or steps its LR on plateaus).
DEFAULT_VALID_FRACTION = 0.05
_MAX_CONFIG_BYTES = 1 << 20  # a --config file; a tuned one is a few hundred bytes

logger = logging.getLogger(__name__)


@dataclass
class RunConfig:
    """What to train: a model name, its options and training options (the JSON of ``--config`` files).

    The file format is ``{"model": "mf", "model_options": {...}, "train_options": {...}, "tuned_on": {...}}``;
    every key is optional and unknown keys are refused (except ``written_by``, which ``deepmf tune`` stamps its
    files with). ``tuned_on`` (written by ``deepmf tune``) names the data, split and seed the options were
    searched on.
    """

    model: str | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    train_options: dict[str, Any] = field(default_factory=dict)
    tuned_on: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> RunConfig:
        """Read a config file; ConfigError naming the file on any problem."""
        source = Path(path)
        try:
            info = source.stat()
            # A pipe or device could block or never end; a config file is a few hundred bytes.
            if not stat.S_ISREG(info.st_mode):
                raise ConfigError(f"{source}: not a config file (a folder, pipe or device)")
            if info.st_size > _MAX_CONFIG_BYTES:
                raise ConfigError(f"{source}: {info.st_size:,} bytes, too large for a config file "
                                  f"(at most {_MAX_CONFIG_BYTES:,})")
            values = json.loads(source.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {source} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{source}: not a valid JSON config ({exc})") from None
        except RecursionError:
            raise ConfigError(f"{source}: not a valid JSON config (nested too deeply)") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: expected a JSON object")
        unknown = sorted(set(values) - {"model", "model_options", "train_options", "tuned_on", "written_by"})
        if unknown:
            raise ConfigError(
                f"{source}: unknown key(s) {', '.join(unknown)} "
                "(expected model, model_options, train_options, tuned_on)"
            )
        model = values.get("model")
        model_options, train_options = values.get("model_options", {}), values.get("train_options", {})
        tuned_on = values.get("tuned_on", {})
        if (
            (model is not None and not isinstance(model, str))
            or not isinstance(model_options, dict)
            or not isinstance(train_options, dict)
            or not isinstance(tuned_on, dict)
        ):
            raise ConfigError(f"{source}: model must be a string, model_options, train_options and tuned_on "
                              "objects")
        return cls(model, dict(model_options), dict(train_options), dict(tuned_on), str(source))

    def warn_if_tuned_elsewhere(self, data_name: str, split_name: str, seed: int) -> str | None:
        """Log (and return) a warning when the options were tuned on other data, another split or another seed:
        the search may have validated on ratings that are this split's test part."""
        if not self.tuned_on:
            return None
        here = {"data": data_name, "split": split_name, "seed": seed}
        if all(self.tuned_on.get(key) == value for key, value in here.items()):
            return None
        tuned = ", ".join(f"{key} {self.tuned_on.get(key)}" for key in here)
        message = (f"{self.source or 'the config'} was tuned on {tuned}, not on {data_name}, split {split_name}, "
                   f"seed {seed}: the search may have validated on this split's test ratings (tune with "
                   f"--split {split_name} for a test score that nothing was tuned on)")
        logger.warning(message)
        return message


def default_model(feedback: str) -> str:
    """The model a command trains when none is named: MF for ratings, iALS for implicit feedback."""
    return "ials" if feedback == "implicit" else "mf"


def train_config_for(model_name: str, overrides: dict[str, Any] | None = None,
                     feedback: str = "explicit") -> TrainConfig:
    """The model's tuned training defaults for ``feedback`` data with ``overrides`` on top (None values are
    ignored).

    The overrides are what the user chose (``TrainConfig.chosen``): an engine that cannot honour one of them is
    not used (``deepmf.training.engines.select_engine``).
    """
    from deepmf.models.registry import default_train_options

    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    return TrainConfig.from_dict({**default_train_options(model_name, feedback), **given}, chosen=given)


def default_valid_fraction(config: TrainConfig) -> float:
    """Validation share to carve when none is asked for: 5 % if validation steers training, else 0.

    Validation steers training through early stopping (``patience`` > 0) or a plateau LR schedule. Without
    either (Bayesian MF, the blend, ``--patience 0``) carved ratings would only be lost for training.
    """
    return DEFAULT_VALID_FRACTION if config.steered_by_validation else 0.0


def carve_validation(train: Ratings, valid_fraction: float | None,
                     config: TrainConfig) -> tuple[Ratings, Ratings | None]:
    """(ratings to fit, validation ratings or None) of a training part.

    Args:
        train: the training part.
        valid_fraction: share to carve off; None for ``default_valid_fraction(config)``; 0 for none.
        config: training options (patience and schedule pick the default; seed picks the ratings).

    Raises:
        ConfigError: the fraction is outside [0, 1).
    """
    fraction = default_valid_fraction(config) if valid_fraction is None else valid_fraction
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0 <= fraction < 1:
        raise ConfigError(f"validation fraction must be in [0, 1), got {fraction}")
    if fraction == 0:
        return train, None
    return validation_split(train, fraction, seed=config.seed)


@dataclass
class ExperimentResult:
    """A trained and tested model.

    Attributes:
        model_name: registry name.
        split: the split's name ("u1", "random:0.2", "kfold:5/2", ...).
        recommender: the trained model, its test evaluation attached (``recommender.evaluation``).
        n_train: ratings the model was fitted on (training part minus validation).
        n_valid: validation ratings carved from the training part.
        n_test: held-out test ratings.
        cold: cold_users, cold_items, cold_test_ratings of the split.
        seconds: wall time of the whole experiment (training, validation and evaluation).
        baseline: implicit feedback, when asked for: the popularity baseline's test metrics on the same split.
    """

    model_name: str
    split: str
    recommender: Recommender
    n_train: int
    n_valid: int
    n_test: int
    cold: dict[str, int]
    seconds: float
    baseline: dict[str, Any] | None = None

    @property
    def evaluation(self) -> Evaluation | None:
        return self.recommender.evaluation

    @property
    def metrics(self) -> dict[str, Any]:
        return {} if self.evaluation is None else self.evaluation.metrics

    @property
    def split_record(self) -> dict[str, Any]:
        """Where the model was trained and tested: split name, sizes, cold counts (JSON keys of every report)."""
        return {"split": self.split, "n_train": self.n_train, "n_valid": self.n_valid, "n_test": self.n_test,
                **self.cold}

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary: sizes, cold counts, test metrics, training record and history."""
        summary = self.recommender.summary
        return {
            "model": self.model_name,
            **self.split_record,
            "test": self.metrics,
            "epochs_run": summary.get("epochs_run"),
            "best_epoch": summary.get("best_epoch"),
            "train_seconds": summary.get("train_seconds"),
            "ratings_per_second": summary.get("ratings_per_second"),
            "engine": summary.get("engine"),
            "engine_note": summary.get("engine_note") or None,
            "threads": summary.get("threads"),
            "device": summary.get("device"),
            "effective_options": summary.get("effective_options"),
            "stopped_early": summary.get("stopped_early"),
            "world_size": summary.get("world_size", 1),
            "seconds": self.seconds,
            "history": self.recommender.history,
            **({"baseline": {"model": "pop", "test": self.baseline}} if self.baseline is not None else {}),
        }


def run_experiment(
    data: Ratings,
    split: Split,
    model_name: str,
    model_options: dict[str, Any] | None = None,
    train_config: TrainConfig | None = None,
    *,
    valid_fraction: float | None = None,
    k: int = 10,
    relevant_threshold: float | None = None,
    protocol: str = "full",
    baseline: bool = False,
    **trainer_kwargs: Any,
) -> ExperimentResult:
    """Train ``model_name`` on ``split.train`` and evaluate it once on ``split.test``.

    Args:
        data: the full data set (id maps, scale, side tables).
        split: train/test split of ``data``.
        model_name: registry name.
        model_options: model options (defaults of the model where absent).
        train_config: training options; the model's tuned defaults when None.
        valid_fraction: share of the training part carved off for validation (early stopping, history);
            0 trains on all of it without validation; None (default) carves 5 % when validation steers
            training (patience > 0 or a plateau schedule) and nothing otherwise.
        k: list length of the ranking metrics.
        relevant_threshold: held-out rating counted as relevant (default: 4 on a 1..5 scale; implicit
            feedback: every held-out interaction).
        protocol: "full" ranking, or "sampled" (NCF's; implicit feedback only, labelled in the metrics).
        baseline: with implicit feedback, also fit the popularity baseline on the same training part and
            report its test metrics (``ExperimentResult.baseline``).
        **trainer_kwargs: passed to the Trainer (progress, checkpoint_dir, resume, on_epoch).

    Raises:
        ConfigError: bad options or fraction; DataError from the split.
    """
    from deepmf.recommender.evaluate import check_protocol
    from deepmf.training.distributed import is_main
    from deepmf.training.fit import train_model

    check_protocol(protocol, data.feedback == "implicit")  # before training, not after
    config = train_config if train_config is not None else train_config_for(model_name, feedback=data.feedback)
    if split.train.user_ids is not data.user_ids or split.train.item_ids is not data.item_ids:
        # A split read from two files (files:TRAIN,TEST) has id maps of its own: they define the model.
        data = split.train
    start = time.perf_counter()
    fit_part, valid = carve_validation(split.train, valid_fraction, config)
    trained = train_model(
        model_name, data, fit_part, valid, dict(model_options or {}), config, **trainer_kwargs
    )
    # Every training rating counts as seen, validation included: the user rated those items.
    recommender = Recommender.from_trained(trained, data, split.train)
    tests = len(split.test) > 0 and is_main()  # in a torchrun job rank 0 tests, on the whole test part
    if tests:
        recommender.evaluation = recommender.evaluate(split.test, k=k, relevant_threshold=relevant_threshold,
                                                      protocol=protocol)
    seconds = time.perf_counter() - start
    pop = None
    if baseline and tests and data.feedback == "implicit" and model_name != "pop":
        pop = run_experiment(data, split, "pop", k=k, protocol=protocol, progress=False).metrics
    return ExperimentResult(
        model_name,
        split.name,
        recommender,
        len(fit_part),
        0 if valid is None else len(valid),
        len(split.test),
        {
            "cold_users": split.cold_users,
            "cold_items": split.cold_items,
            "cold_test_ratings": split.cold_test_ratings,
        },
        seconds,
        pop,
    )
