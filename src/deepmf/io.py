"""The saved-model format: a folder holding ``model.safetensors`` (every tensor) and ``model.json``.

``model.json`` carries ``format`` ("deepmf-model"), ``format_version``, the writing deepmf version, the
SHA-256 of the tensor file, and everything else a ``Recommender`` needs as plain JSON (model name and config,
id maps with their kind, rating scale, titles and genre names, training config, history and summary). Tensors
are read with safetensors, which parses a JSON header and raw little-endian arrays: loading never executes
code, unlike pickle.

This module checks the *file level* (folder and files present, JSON valid, version known, tensor file intact
and unchanged since it was written) and offers small typed accessors for the JSON, so that every problem
becomes a ``ModelFormatError`` naming the folder. ``deepmf.recommender`` checks the *meaning* (shapes against
the model config, id maps against shapes) before it builds anything, so a bad folder is refused whole, never
half-loaded. Folders are written with ``fsutil.atomic_directory``: a reader sees the old complete folder or
the new one.
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from deepmf import __version__
from deepmf.errors import ModelFormatError
from deepmf.fsutil import atomic_directory

FORMAT = "deepmf-model"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.json"

_ALLOWED_DTYPES = {
    torch.float32,
    torch.float64,
    torch.float16,
    torch.bfloat16,
    torch.int64,
    torch.int32,
    torch.int16,
    torch.int8,
    torch.uint8,
    torch.bool,
}


def write_model_folder(
    path: str | os.PathLike[str], tensors: dict[str, torch.Tensor], meta: dict[str, Any]
) -> Path:
    """Write ``tensors`` and ``meta`` as a model folder, atomically (the folder is replaced whole).

    Args:
        path: the folder to create or replace.
        tensors: name -> tensor; copied to CPU.
        meta: JSON-able metadata; ``format``, ``format_version``, ``deepmf_version``, ``created`` and
            ``weights_sha256`` are added here.

    Returns:
        The folder path.
    """
    target = Path(path)
    # clone: safetensors refuses tensors that share storage (tied or sliced parameters).
    blob = save_safetensors(
        {
            name: t.detach().to("cpu").clone(memory_format=torch.contiguous_format)
            for name, t in tensors.items()
        },
        metadata={"format": FORMAT},
    )
    header = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "deepmf_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "weights_sha256": hashlib.sha256(blob).hexdigest(),
    }
    text = json.dumps({**header, **meta}, indent=1, allow_nan=False)
    with atomic_directory(target) as tmp:
        (tmp / WEIGHTS_FILE).write_bytes(blob)
        (tmp / META_FILE).write_text(text, encoding="utf-8")
    return target


def read_model_folder(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a model folder.

    Returns:
        ``(tensors, meta)``.

    Raises:
        ModelFormatError: folder or file missing, JSON invalid or not an object, unknown format or version,
            tensor file truncated, corrupted or changed since it was written, unsupported tensor dtype.
    """
    folder = Path(path)
    if not folder.exists():
        raise ModelFormatError(f"model folder {folder} does not exist")
    if not folder.is_dir():
        raise ModelFormatError(f"{folder} is not a model folder (it is a file)")
    meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
    for required in (meta_path, weights_path):
        if not required.is_file():
            raise ModelFormatError(f"{folder}: {required.name} is missing; not a deepmf model folder")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelFormatError(f"{meta_path}: invalid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelFormatError(f"{meta_path}: expected a JSON object")
    _check_version(meta, meta_path)
    blob = weights_path.read_bytes()
    expected = get(meta, "weights_sha256", str, meta_path)
    if hashlib.sha256(blob).hexdigest() != expected:
        raise ModelFormatError(
            f"{weights_path}: contents do not match the checksum in {META_FILE} "
            "(truncated, corrupted or replaced)"
        )
    try:
        tensors = load_safetensors(blob)
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise ModelFormatError(f"{weights_path}: unreadable tensor file ({exc})") from None
    for name, tensor in tensors.items():
        if tensor.dtype not in _ALLOWED_DTYPES:
            raise ModelFormatError(f"{weights_path}: tensor {name!r} has unsupported dtype {tensor.dtype}")
    return tensors, meta


def _check_version(meta: dict[str, Any], meta_path: Path) -> None:
    if meta.get("format") != FORMAT:
        raise ModelFormatError(f"{meta_path}: not a deepmf model file (format {meta.get('format')!r})")
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ModelFormatError(f"{meta_path}: format_version missing or not an integer")
    if version != FORMAT_VERSION:
        written_by = meta.get("deepmf_version", "an unknown version")
        raise ModelFormatError(
            f"{meta_path}: model format {version} (written by deepmf {written_by}) is not "
            f"supported by deepmf {__version__}, which reads format {FORMAT_VERSION}; "
            "retrain the model with this version"
        )


def get(
    meta: dict[str, Any],
    key: str,
    kind: type | tuple[type, ...],
    where: str | os.PathLike[str],
    *,
    optional: bool = False,
) -> Any:
    """``meta[key]`` checked against ``kind``; a missing or mistyped value raises ModelFormatError.

    Args:
        meta: a JSON object from model.json.
        key: the key to read.
        kind: accepted Python type(s) (bool is never accepted as int/float).
        where: file or section named in the error message.
        optional: a missing key or JSON null gives None instead of an error.
    """
    if key not in meta or meta[key] is None:
        if optional:
            return None
        raise ModelFormatError(f"{where}: required key {key!r} is missing")
    value = meta[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:
        raise ModelFormatError(f"{where}: {key!r} has the wrong type (bool)")
    if not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise ModelFormatError(f"{where}: {key!r} should be {names}, got {type(value).__name__}")
    return value
