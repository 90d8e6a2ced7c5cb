"""The saved-model format: a folder holding ``model.safetensors`` (every tensor) and ``model.json``.

``model.json`` carries ``format`` ("deepmf-model", always the first key), ``format_version``, the writing
deepmf version, the SHA-256 of the tensor file (``weights_sha256``), everything else a ``Recommender`` needs as
plain JSON (model name and config, id maps with their kind, rating scale, titles and genre names, training
config, history and summary), and ``checksum``: the SHA-256 of the canonical JSON of all other keys. Since that
JSON includes ``weights_sha256``, the checksum covers everything that decides an answer: swapping two ids,
narrowing the scale or editing the config is detected like a changed weight. Tensors are read with
safetensors, which parses a JSON header and raw little-endian arrays: loading never executes code, unlike
pickle.

This module checks the *file level* (folder and files present, sizes that fit in memory, JSON valid, version
known, checksums, finite weights) and offers small typed accessors for the JSON, so that every problem becomes
a ``ModelFormatError`` naming the folder. ``deepmf.recommender`` and ``deepmf.models.registry`` check the
*meaning* (shapes against the model config, id maps against shapes) before anything is built, so a bad folder
is refused whole, never half-loaded. Folders are written with ``fsutil.replace_directory`` (a reader sees the
old complete folder or the new one) and only over a deepmf model folder (``deepmf.folders``).

Format 2 added ``checksum``; format 1 folders are refused with a message to retrain.

Why not pydantic (issue 16 suggested it; the service uses it for HTTP bodies): the per-key type checks it would
replace are ``get`` below (~25 lines); the checks that matter are across keys and tensors (shapes against the
model config, id maps against shapes, checksums), which pydantic models would still leave to hand-written
validators; and it would make a compiled dependency mandatory for loading a model, which today needs only torch,
safetensors and numpy. Its multi-line ValidationError would also have to be flattened into the one-line
``ModelFormatError`` the CLI and service print.
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
from deepmf.errors import ConfigError, ModelFormatError
from deepmf.folders import CHECKPOINT_DIR, META_FILE, MODEL_FORMAT, WEIGHTS_FILE, check_model_target
from deepmf.fsutil import as_path, recover, replace_directory, write_new_file
from deepmf.memory import format_bytes, require

FORMAT = MODEL_FORMAT
FORMAT_VERSION = 2
# Parsed JSON takes about this many times its text size in Python objects.
_JSON_MEMORY_FACTOR = 12

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


def canonical_checksum(meta: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON (sorted keys, no spaces) of ``meta`` without its ``checksum`` key."""
    body = {key: value for key, value in meta.items() if key != "checksum"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_model_folder(
    path: str | os.PathLike[str],
    tensors: dict[str, torch.Tensor],
    meta: dict[str, Any],
    *,
    overwrite: bool = True,
    keep_checkpoint: bool = False,
) -> Path:
    """Write ``tensors`` and ``meta`` as a model folder, atomically (the folder is replaced whole).

    Args:
        path: the folder to create or replace.
        tensors: name -> tensor; copied to CPU.
        meta: JSON-able metadata; ``format``, ``format_version``, ``deepmf_version``, ``created``,
            ``weights_sha256`` and ``checksum`` are added here.
        overwrite: replace an existing deepmf model folder (other existing paths are always refused).
        keep_checkpoint: carry the existing folder's ``checkpoint/`` into the new one (``train --out``).

    Returns:
        The folder path.

    Raises:
        OutputError: ``path`` is not deepmf's to replace (see ``deepmf.folders``), or the system refused
            (read-only, permission denied, disk full); the folder is then as it was.
    """
    target = as_path(path, "model folder")
    if not isinstance(overwrite, bool) or not isinstance(keep_checkpoint, bool):
        raise ConfigError("overwrite and keep_checkpoint must be True or False")
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
    document = {**header, **meta}
    document["checksum"] = canonical_checksum(document)
    text = json.dumps(document, indent=1, allow_nan=False)
    with replace_directory(target, check=lambda folder: check_model_target(folder, overwrite=overwrite),
                           keep=(CHECKPOINT_DIR,) if keep_checkpoint else ()) as tmp:
        write_new_file(tmp / WEIGHTS_FILE, blob)
        write_new_file(tmp / META_FILE, text.encode("utf-8"))
    return target


def read_model_folder(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read and verify a model folder.

    Returns:
        ``(tensors, meta)``.

    Raises:
        ModelFormatError: folder or file missing, JSON invalid or not an object, unknown format or version,
            JSON or tensor file changed since it was written (truncated, corrupted, edited), unsupported tensor
            dtype, non-finite weights.
        ResourceError: the files would not fit in the available memory.
    """
    folder = as_path(path, "model folder")
    if not folder.exists():
        recover(folder)  # a kill during a save may have left the complete folder under a temp name
    if not folder.exists():
        raise ModelFormatError(f"model folder {folder} does not exist")
    if not folder.is_dir():
        raise ModelFormatError(f"{folder} is not a model folder (it is a file)")
    meta_path, weights_path = folder / META_FILE, folder / WEIGHTS_FILE
    for required in (meta_path, weights_path):
        if not required.is_file():
            raise ModelFormatError(f"{folder}: {required.name} is missing; not a deepmf model folder")
    sizes = {p: p.stat().st_size for p in (meta_path, weights_path)}
    # The weights are read, then copied into tensors; the JSON grows into Python objects.
    require(2 * sizes[weights_path] + _JSON_MEMORY_FACTOR * sizes[meta_path],
            f"loading {folder} ({format_bytes(sum(sizes.values()))} of files)")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFormatError(f"{meta_path}: invalid JSON ({str(exc).splitlines()[0]})") from None
    except OSError as exc:
        raise ModelFormatError(f"{meta_path}: cannot read ({exc.strerror})") from None
    if not isinstance(meta, dict):
        raise ModelFormatError(f"{meta_path}: expected a JSON object")
    _check_version(meta, meta_path)
    checksum = get(meta, "checksum", str, meta_path)
    try:
        matches = canonical_checksum(meta) == checksum
    except ValueError:  # NaN or infinity in the JSON: never written by deepmf
        matches = False
    if not matches:
        raise ModelFormatError(f"{meta_path}: contents do not match its checksum (edited, truncated or "
                               "corrupted since deepmf wrote it)")
    try:
        blob = weights_path.read_bytes()
    except OSError as exc:
        raise ModelFormatError(f"{weights_path}: cannot read ({exc.strerror})") from None
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
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ModelFormatError(f"{weights_path}: tensor {name!r} holds NaN or infinite values")
    return tensors, meta


def saved_run_id(path: str | os.PathLike[str]) -> str | None:
    """The training run id in a model folder's summary (None when absent or unreadable; nothing is verified)."""
    try:
        summary = json.loads((Path(path) / META_FILE).read_text(encoding="utf-8")).get("summary") or {}
        return summary.get("run_id") or None
    except (OSError, ValueError, AttributeError):
        return None


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
