"""Per-epoch training checkpoints: safetensors + JSON, written atomically, never pickled.

A checkpoint folder holds::

    model.safetensors    the model's state_dict after the epoch
    best.safetensors     the best weights so far (only with early stopping)
    state.safetensors    every tensor of the trainer/engine state (optimizer moments, RNG states), flattened
    state.json           format version, model name + config, train config, data fingerprint, epoch, history,
                         and the structure of the trainer/engine state with tensors replaced by references

The whole folder is replaced at once (``fsutil.replace_directory``), so after a kill it is either the previous
epoch's complete checkpoint or this one's; a folder holding anything but checkpoint files is never replaced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from safetensors.torch import save as save_safetensors

from deepmf.errors import ModelFormatError
from deepmf.folders import CHECKPOINT_FORMAT, CHECKPOINT_JSON, check_checkpoint_target
from deepmf.fsutil import recover, replace_directory, write_new_file

FORMAT = CHECKPOINT_FORMAT
FORMAT_VERSION = 1
STATE_JSON = CHECKPOINT_JSON


# ---- nested state <-> (JSON structure, flat tensors) -------------------------------------------------------
def flatten_state(state: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split a nested structure of dicts/lists/tuples/scalars/tensors into JSON and a flat tensor dict.

    Dicts become ``{"__dict__": [[key, value], ...]}`` so int keys (optimizer state is keyed by parameter
    index) survive JSON; tuples become ``{"__tuple__": [...]}``; each tensor becomes
    ``{"__tensor__": "t<n>"}``.
    """
    tensors: dict[str, torch.Tensor] = {}

    def walk(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            key = f"t{len(tensors)}"
            # safetensors needs contiguous dense CPU tensors; clone so shared storage is never an issue.
            tensors[key] = value.detach().to("cpu").contiguous().clone()
            return {"__tensor__": key}
        if isinstance(value, dict):
            return {"__dict__": [[k, walk(v)] for k, v in value.items()]}
        if isinstance(value, tuple):
            return {"__tuple__": [walk(v) for v in value]}
        if isinstance(value, list):
            return [walk(v) for v in value]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        raise TypeError(f"cannot checkpoint a value of type {type(value).__name__}")

    return walk(state), tensors


def unflatten_state(structure: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """Inverse of ``flatten_state``."""
    if isinstance(structure, list):
        return [unflatten_state(v, tensors) for v in structure]
    if isinstance(structure, dict):
        if "__tensor__" in structure:
            return tensors[structure["__tensor__"]]
        if "__tuple__" in structure:
            return tuple(unflatten_state(v, tensors) for v in structure["__tuple__"])
        return {k: unflatten_state(v, tensors) for k, v in structure["__dict__"]}
    return structure


# ---- the checkpoint folder ---------------------------------------------------------------------------------
@dataclass
class Checkpoint:
    """What a checkpoint folder holds, loaded.

    Attributes:
        info: the JSON metadata (model, train_config, fingerprint, epoch, history, ...).
        model_state: the model's state_dict after the last complete epoch.
        best_state: the best weights so far, or None.
        state: the trainer/engine state (nested, tensors restored).
    """

    info: dict[str, Any]
    model_state: dict[str, torch.Tensor]
    best_state: dict[str, torch.Tensor] | None
    state: dict[str, Any]


def _state_dict_for_save(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}


def save_checkpoint(directory: str | Path, *, info: dict[str, Any], model_state: dict[str, torch.Tensor],
                    best_state: dict[str, torch.Tensor] | None, state: dict[str, Any]) -> None:
    """Write a complete checkpoint folder atomically, replacing the previous one.

    Raises:
        OutputError: ``directory`` holds files that are not a checkpoint's, or the system refused (read-only,
            permission denied, disk full); the previous checkpoint is then as it was.
    """
    structure, tensors = flatten_state(state)
    document = {"format": FORMAT, "format_version": FORMAT_VERSION, **info, "state": structure}
    files = {"model.safetensors": save_safetensors(_state_dict_for_save(model_state)),
             "state.safetensors": save_safetensors(tensors),
             STATE_JSON: json.dumps(document, indent=1).encode("utf-8")}
    if best_state is not None:
        files["best.safetensors"] = save_safetensors(_state_dict_for_save(best_state))
    with replace_directory(directory, check=check_checkpoint_target, durable=False) as tmp:
        for name, data in files.items():
            write_new_file(tmp / name, data, durable=False)  # survives a kill; the final model is fsynced


def has_checkpoint(directory: str | Path) -> bool:
    """True when ``directory`` holds a checkpoint (complete or not: ``load_checkpoint`` checks the rest).

    A checkpoint that a kill left under a temp name during its swap is put back first (``fsutil.recover``).
    """
    if not Path(directory).exists():
        recover(directory)
    return (Path(directory) / STATE_JSON).exists()


def load_checkpoint(directory: str | Path) -> Checkpoint:
    """Read a checkpoint folder.

    Raises:
        ModelFormatError: files missing, unreadable or of another format/version.
    """
    folder = Path(directory)
    try:
        document = json.loads((folder / STATE_JSON).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFormatError(f"{folder}: not a deepmf checkpoint (no {STATE_JSON})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{folder / STATE_JSON}: unreadable checkpoint metadata ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ModelFormatError(f"{folder}: not a deepmf checkpoint")
    if document.get("format_version") != FORMAT_VERSION:
        raise ModelFormatError(f"{folder}: checkpoint format version {document.get('format_version')} is not "
                               f"supported (this deepmf reads {FORMAT_VERSION})")
    try:
        model_state = load_file(str(folder / "model.safetensors"))
        best_path = folder / "best.safetensors"
        best_state = load_file(str(best_path)) if best_path.exists() else None
        tensors = load_file(str(folder / "state.safetensors"))
        state = unflatten_state(document.pop("state"), tensors)
    except (OSError, SafetensorError, KeyError, TypeError, ValueError) as exc:
        raise ModelFormatError(f"{folder}: damaged checkpoint ({exc})") from None
    return Checkpoint(document, model_state, best_state, state)
