"""Model registry: name → model class. The CLI, the trainer, the saved-model loader and the service use it.

To add a model, import its class here and add it to ``_BUILTIN`` (or decorate it with ``register``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deepmf.errors import ConfigError, ModelFormatError
from deepmf.models.autorec import AutoRec
from deepmf.models.base import RatingModel
from deepmf.models.bayes import BayesMF
from deepmf.models.blend import Blend
from deepmf.models.bpr import BPR
from deepmf.models.deep import DeepMF
from deepmf.models.ease import EASE
from deepmf.models.ials import IALS
from deepmf.models.mf import MF
from deepmf.models.neumf import NeuMF
from deepmf.models.pop import Pop
from deepmf.models.svdpp import SVDpp

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings

MODELS: dict[str, type[RatingModel]] = {}


def register(cls: type[RatingModel]) -> type[RatingModel]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    MODELS[cls.name] = cls
    return cls


for _builtin in (MF, DeepMF, NeuMF, BayesMF, AutoRec, SVDpp, Blend, BPR, IALS, EASE, Pop):
    register(_builtin)


def model_class(name: str) -> type[RatingModel]:
    """The class registered as ``name`` ("blend:mf,bayes" names the blend); ConfigError when there is none."""
    try:
        return MODELS[name.partition(":")[0]]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(sorted(MODELS))}") from None


def create_model(name: str, data: Ratings, **options: Any) -> RatingModel:
    """A new model sized for ``data`` (shapes, mean, scale and side tables of the training ratings).

    Args:
        name: registry name ("mf", "deepmf", "neumf", ...; for implicit feedback "bpr", "ials", "ease", "pop").
        data: the ratings the model will be trained on (their id maps fix the table sizes).
        **options: model options (``factors``, ``layers``, ``head``, ...).

    Raises:
        ConfigError: unknown model or option, or an invalid option value.
    """
    base, _, members = name.partition(":")
    if members:  # "blend:mf,bayes" is the blend with those members
        if base != "blend":
            raise ConfigError(f"only blend takes a member list after ':', got model {name!r}")
        options = {**options, "members": members}
    return model_class(base).from_data(data, **options)


def model_from_config(name: str, config: dict[str, Any]) -> RatingModel:
    """Rebuild an untrained model of the same shapes from ``model.config_dict()`` (then load its state_dict).

    Raises:
        ModelFormatError: the config does not describe a valid model of that name.
    """
    cls = model_class(name)
    try:
        return cls(cls.config_class(**config))
    except (TypeError, ConfigError) as exc:
        raise ModelFormatError(f"invalid config for model {name!r}: {exc}") from None


def default_train_options(name: str, feedback: str = "explicit") -> dict[str, Any]:
    """Tuned TrainConfig values for model ``name`` learning ``feedback`` ("explicit" or "implicit") data (a
    fresh dict; CLI flags and --config override them)."""
    cls = model_class(name)
    if feedback == "implicit" and cls.default_train_implicit is not None:
        return dict(cls.default_train_implicit)
    return dict(cls.default_train)
