"""Saving and loading a Recommender as a model folder (safetensors + JSON; the format is in ``deepmf.io``)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Self

import numpy as np
import torch

from deepmf import io
from deepmf.data.idmap import IdMap
from deepmf.data.ratings import ItemTable, RatingScale
from deepmf.errors import DeepMFError, ModelFormatError, ResourceError
from deepmf.recommender.base import RecommenderBase
from deepmf.recommender.results import Evaluation
from deepmf.recommender.seen import SeenRatings


class Persistence(RecommenderBase):
    """save() writes the folder; load() checks everything in it before building anything."""

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = True, keep_checkpoint: bool = False) -> Path:
        """Write the model folder (``model.safetensors`` + ``model.json``) atomically; see ``deepmf.io``.

        Only a new path, an empty folder or a deepmf model folder (with ``overwrite``) is written; see
        ``deepmf.folders`` for the rule. ``keep_checkpoint`` carries the folder's training checkpoint over.

        Raises:
            OutputError: the path is not deepmf's to replace, or the system refused; nothing was changed.
        """
        tensors = {f"model.{name}": t for name, t in self.model.state_dict().items()}
        tensors.update(
            {
                "seen.indptr": torch.from_numpy(self.seen.indptr),
                "seen.items": torch.from_numpy(self.seen.items),
                "seen.ratings": torch.from_numpy(self.seen.ratings),
            }
        )
        item_table = None
        if self.item_table is not None:
            item_table = {
                "titles": [str(t) for t in self.item_table.titles],
                "genre_names": list(self.item_table.genre_names),
            }
            if self.item_table.genres is not None:
                tensors["items.genres"] = torch.from_numpy(np.asarray(self.item_table.genres, dtype=np.uint8))
        evaluation = None
        if self.evaluation is not None:
            evaluation = self.evaluation.to_dict()
            tensors["evaluation.actual"] = torch.from_numpy(self.evaluation.actual)
            tensors["evaluation.predicted"] = torch.from_numpy(self.evaluation.predicted)
        meta = {
            "model": {
                "name": self.model_name,
                "head": self.model.head,
                "config": self.model.config_dict(),
                "options": self.model_options,
            },
            "users": {"kind": self.user_ids.kind, "ids": self.user_ids.to_list()},
            "items": {"kind": self.item_ids.kind, "ids": self.item_ids.to_list()},
            "scale": self.scale.to_dict(),
            "feedback": {"kind": self.feedback, "positive": self.positive},
            "item_table": item_table,
            "train_config": None if self.train_config is None else self.train_config.to_dict(),
            "history": self.history,
            "summary": self.summary,
            "evaluation": evaluation,
        }
        return io.write_model_folder(
            path, tensors, _json_safe(meta), overwrite=overwrite, keep_checkpoint=keep_checkpoint
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str], device: str | torch.device = "cpu") -> Self:
        """Load a model folder written by ``save``, checking everything before building anything.

        Raises:
            ModelFormatError: missing folder or file, invalid or edited JSON, unknown format version,
                truncated or tampered tensors, shapes or dtypes that disagree with the model config or the
                id maps.
        """
        from deepmf.device import resolve_device

        tensors, meta = io.read_model_folder(path)
        where = Path(path) / io.META_FILE
        try:
            parts = _parse_folder(tensors, meta, where)
        except (ModelFormatError, ResourceError):
            raise
        except (DeepMFError, KeyError, TypeError, ValueError, IndexError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelFormatError(f"{where}: inconsistent model folder ({reason})") from None
        recommender = cls(**parts)
        recommender.model.to(resolve_device(device))
        return recommender



def _json_safe(value: Any) -> Any:
    """NaN/inf -> None and numpy scalars -> Python, so model.json is strict JSON."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _parse_folder(tensors: dict[str, torch.Tensor], meta: dict[str, Any], where: Path) -> dict[str, Any]:
    """Validate a model folder's contents against each other and return Recommender keyword arguments."""
    from deepmf.models.registry import model_from_config
    from deepmf.training.config import TrainConfig

    model_meta = io.get(meta, "model", dict, where)
    name = io.get(model_meta, "name", str, f"{where} [model]")
    config = io.get(model_meta, "config", dict, f"{where} [model]")
    options = io.get(model_meta, "options", dict, f"{where} [model]", optional=True) or {}
    state = {key.removeprefix("model."): t for key, t in tensors.items() if key.startswith("model.")}
    try:
        model = model_from_config(name, config, state)
    except (ModelFormatError, ResourceError) as exc:
        raise type(exc)(f"{where}: {exc}") from None
    model.load_state_dict(state, strict=True)

    maps = []
    for side in ("users", "items"):
        section = io.get(meta, side, dict, where)
        kind = io.get(section, "kind", str, f"{where} [{side}]")
        ids = io.get(section, "ids", list, f"{where} [{side}]")
        if kind not in ("int", "str"):
            raise ModelFormatError(f"{where}: [{side}] kind must be 'int' or 'str', got {kind!r}")
        maps.append(IdMap.from_list(ids, kind, name=side[:-1]))
    user_ids, item_ids = maps
    n_users, n_items = config.get("n_users"), config.get("n_items")
    if (n_users is not None and n_users != len(user_ids)) or (
        n_items is not None and n_items != len(item_ids)
    ):
        raise ModelFormatError(
            f"{where}: id maps have {len(user_ids)} users / {len(item_ids)} items but the model "
            f"config says {n_users} / {n_items}"
        )
    seen = _parse_seen(tensors, len(user_ids), len(item_ids), where)
    scale = RatingScale.from_dict(io.get(meta, "scale", dict, where))
    if not (scale.minimum < scale.maximum and scale.step > 0):
        raise ModelFormatError(f"{where}: invalid rating scale {scale}")
    item_table = _parse_item_table(meta, tensors, len(item_ids), where)
    feedback, positive = _parse_feedback(meta, where)
    if model.output_kind == "score" and feedback != "implicit":
        raise ModelFormatError(f"{where}: model {name!r} scores implicit feedback, but the folder says {feedback}")
    train_values = io.get(meta, "train_config", dict, where, optional=True)
    evaluation = None
    evaluation_meta = io.get(meta, "evaluation", dict, where, optional=True)
    if evaluation_meta is not None:
        actual, predicted = tensors.get("evaluation.actual"), tensors.get("evaluation.predicted")
        if actual is None or predicted is None or actual.shape != predicted.shape or actual.ndim != 1:
            raise ModelFormatError(f"{where}: evaluation tensors are missing or misshapen")
        evaluation = Evaluation(evaluation_meta, actual.float().numpy(), predicted.float().numpy())
    history = io.get(meta, "history", list, where, optional=True) or []
    if not all(isinstance(record, dict) for record in history):
        raise ModelFormatError(f"{where}: history must be a list of objects")
    return {
        "model": model,
        "model_name": name,
        "user_ids": user_ids,
        "item_ids": item_ids,
        "scale": scale,
        "item_table": item_table,
        "seen": seen,
        "train_config": None if train_values is None else TrainConfig.from_dict(train_values),
        "history": history,
        "model_options": options,
        "summary": io.get(meta, "summary", dict, where, optional=True) or {},
        "evaluation": evaluation,
        "feedback": feedback,
        "positive": positive,
    }


def _parse_feedback(meta: dict[str, Any], where: Path) -> tuple[str, float | None]:
    """(kind, positive threshold) of the ``feedback`` section; folders written before it are explicit."""
    from deepmf.data.ratings import FEEDBACKS

    section = io.get(meta, "feedback", dict, where, optional=True) or {"kind": "explicit"}
    kind = io.get(section, "kind", str, f"{where} [feedback]")
    if kind not in FEEDBACKS:
        raise ModelFormatError(f"{where}: [feedback] kind must be one of {', '.join(FEEDBACKS)}, got {kind!r}")
    positive = io.get(section, "positive", (int, float), f"{where} [feedback]", optional=True)
    return kind, None if positive is None else float(positive)


def _parse_seen(tensors: dict[str, torch.Tensor], n_users: int, n_items: int, where: Path) -> SeenRatings:
    try:
        indptr, items, ratings = (tensors[f"seen.{name}"] for name in ("indptr", "items", "ratings"))
    except KeyError as exc:
        raise ModelFormatError(f"{where}: training ratings tensor {exc.args[0]!r} is missing") from None
    indptr_np, items_np = indptr.numpy().astype(np.int64), items.numpy().astype(np.int32)
    valid = (
        indptr_np.ndim == 1
        and len(indptr_np) == n_users + 1
        and indptr_np[0] == 0
        and bool(np.all(np.diff(indptr_np) >= 0))
        and indptr_np[-1] == len(items_np) == len(ratings)
        and (len(items_np) == 0 or (items_np.min() >= 0 and items_np.max() < n_items))
    )
    if not valid:
        raise ModelFormatError(f"{where}: training ratings do not match {n_users} users x {n_items} items")
    return SeenRatings(indptr_np, items_np, ratings.float().numpy(), n_items)


def _parse_item_table(
    meta: dict[str, Any], tensors: dict[str, torch.Tensor], n_items: int, where: Path
) -> ItemTable | None:
    section = io.get(meta, "item_table", dict, where, optional=True)
    if section is None:
        return None
    titles = io.get(section, "titles", list, f"{where} [item_table]")
    genre_names = io.get(section, "genre_names", list, f"{where} [item_table]")
    genres = tensors.get("items.genres")
    if len(titles) != n_items or (genres is not None and tuple(genres.shape) != (n_items, len(genre_names))):
        raise ModelFormatError(f"{where}: item titles/genres do not match the {n_items} items")
    title_array = np.empty(n_items, dtype=object)
    title_array[:] = [str(t) for t in titles]
    return ItemTable(
        title_array,
        None if genres is None else genres.numpy().astype(bool),
        tuple(str(g) for g in genre_names),
    )
