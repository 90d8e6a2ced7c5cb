"""Model registry: name → model class. The CLI, the trainer, the saved-model loader and the service use it.

To add a model, import its class here and add it to ``_BUILTIN`` (or decorate it with ``register``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from deepmf.errors import ConfigError, ModelFormatError
from deepmf.memory import allocation_guard, format_bytes
from deepmf.models.autorec import AutoRec
from deepmf.models.base import RatingModel
from deepmf.models.bayes import BayesMF
from deepmf.models.blend import Blend, parse_members
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


def check_model_name(name: str) -> None:
    """Refuse an unknown model or blend member ("blend:mf,gpt") by its name alone, before any training.

    Raises:
        ConfigError: no such model, a member list on another model than blend, or a bad member.
    """
    base, _, members = name.partition(":")
    model_class(base)
    if members:
        if base != "blend":
            raise ConfigError(f"only blend takes a member list after ':', got model {name!r}")
        parse_members(members)


def create_model(name: str, data: Ratings, **options: Any) -> RatingModel:
    """A new model sized for ``data`` (shapes, mean, scale and side tables of the training ratings).

    Args:
        name: registry name ("mf", "deepmf", "neumf", ...; for implicit feedback "bpr", "ials", "ease", "pop").
        data: the ratings the model will be trained on (their id maps fix the table sizes).
        **options: model options (``factors``, ``layers``, ``head``, ...).

    Raises:
        ConfigError: unknown model or option, or an invalid option value.
    """
    check_model_name(name)
    base, _, members = name.partition(":")
    if members:  # "blend:mf,bayes" is the blend with those members
        options = {**options, "members": members}
    try:
        return model_class(base).from_data(data, **options)
    except TypeError as exc:  # an option of the wrong type that a config check compared or did arithmetic with
        if not options:
            raise
        raise ConfigError(f"invalid option for model {name!r}: {exc}") from None


def model_from_config(name: str, config: dict[str, Any],
                      state: dict[str, torch.Tensor] | None = None) -> RatingModel:
    """Rebuild an untrained model of the same shapes from ``model.config_dict()`` (then load its state_dict).

    A config whose tables would not fit in memory is refused before they are allocated
    (``memory.allocation_guard``); one whose shapes disagree with ``state`` is refused before loading it.

    Args:
        name: registry name.
        config: the model's config as a dict (read from model.json).
        state: the tensors the model will load, checked against the config's names, shapes and dtypes.

    Raises:
        ModelFormatError: the config does not describe a valid model of that name, or ``state`` does not fit it.
        ResourceError: the model would not fit in the available memory.
    """
    cls = model_class(name)
    # The tables a config builds are the tensors its file holds: more than twice that (and a megabyte for
    # small helper tensors) is an edited config, refused before it allocates gigabytes.
    held = sum(t.numel() * t.element_size() for t in (state or {}).values())
    limit = None if state is None else (2 * held + (1 << 20), lambda need: ModelFormatError(
        f"the model config needs at least {format_bytes(need)}, more than the {format_bytes(held)} of weights "
        "its file holds"))
    try:
        with allocation_guard(f"model {name!r} of this config", limit=limit):
            model = cls(cls.config_class(**config))
    except ConfigError as exc:
        raise ModelFormatError(f"invalid config for model {name!r}: {exc}") from None
    except (TypeError, ValueError, OverflowError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelFormatError(f"invalid config for model {name!r}: {reason}") from None
    if state is not None:
        _check_state(name, model.state_dict(), state)
    return model


def _check_state(name: str, expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor]) -> None:
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ModelFormatError(
            f"tensors do not match model {name!r} "
            f"(missing: {', '.join(missing) or '-'}; unexpected: {', '.join(unexpected) or '-'})"
        )
    for key, tensor in expected.items():
        if state[key].shape != tensor.shape or state[key].dtype != tensor.dtype:
            raise ModelFormatError(
                f"tensor {key!r} is {state[key].dtype} {tuple(state[key].shape)} but "
                f"the model config needs {tensor.dtype} {tuple(tensor.shape)}"
            )


def default_train_options(name: str, feedback: str = "explicit") -> dict[str, Any]:
    """Tuned TrainConfig values for model ``name`` learning ``feedback`` ("explicit" or "implicit") data (a
    fresh dict; CLI flags and --config override them)."""
    cls = model_class(name)
    if feedback == "implicit" and cls.default_train_implicit is not None:
        return dict(cls.default_train_implicit)
    return dict(cls.default_train)
