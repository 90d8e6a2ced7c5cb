"""The folders and files deepmf writes, and how it recognises its own before replacing anything.

**The rule.** deepmf replaces an existing path only when it can tell, from the path's own files, that deepmf
wrote everything in it:

- a *model folder* (``save``, ``train --out``) may replace a real folder (not a link) that is empty, or that
  holds ``model.json`` whose first key is ``"format": "deepmf-model"`` (any format version), or
  ``checkpoint/state.json`` with ``"format": "deepmf-checkpoint"`` (a run that has not finished), or the
  marker file ``.deepmf`` — and that holds nothing but ``model.json``, ``model.safetensors``, the marker,
  ``checkpoint/`` (only checkpoint files and the marker), ``plots/`` (only PNGs deepmf drew) and deepmf's own
  marked temp folders. Replacing a non-empty model folder also needs the caller's consent (``--force``,
  ``overwrite=True``), except a run's own ``--resume`` target;
- a *checkpoint folder* may replace one that holds only checkpoint files and the marker;
- a *file* (report, plot, tuned config) may replace a regular file deepmf wrote: a PNG whose ``Software`` text
  chunk starts with "deepmf", a ``report.md`` that starts with deepmf's comment line, a JSON config with
  ``"written_by": "deepmf tune"``.

Anything else — a user's file among ours, a link, a device, a file where a folder should be — is refused
with one ``OutputError`` line naming what is in the way. Nothing is deleted or renamed to find out.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from deepmf.errors import ConfigError, OutputError
from deepmf.fsutil import MARKER, is_leftover, is_marked, recover, refuse_current_folder

META_FILE = "model.json"
WEIGHTS_FILE = "model.safetensors"
MODEL_FORMAT = "deepmf-model"
CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_JSON = "state.json"
CHECKPOINT_FORMAT = "deepmf-checkpoint"
CHECKPOINT_FILES = frozenset({CHECKPOINT_JSON, "model.safetensors", "best.safetensors", "state.safetensors"})
PLOTS_DIR = "plots"
PNG_SOFTWARE = "deepmf"
REPORT_HEADER = "<!-- written by deepmf: `deepmf train --report`, `compare --report` and `demo` rewrite it -->"
TUNE_STAMP = "deepmf tune"

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HEAD_BYTES = 4096


def _head(path: Path, size: int = _HEAD_BYTES) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(size)
    except OSError:
        return b""


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _has_format(path: Path, fmt: str) -> bool:
    """True when the JSON file starts with ``{"format": fmt`` (deepmf writes that key first)."""
    pattern = rb'\s*\{\s*"format"\s*:\s*"' + re.escape(fmt.encode()) + rb'"'
    return _is_file(path) and re.match(pattern, _head(path)) is not None


def is_deepmf_png(path: Path) -> bool:
    """A PNG whose Software text chunk (written before the image data) starts with "deepmf"."""
    head = _head(path, 1024)
    marker = b"tEXtSoftware\x00" + PNG_SOFTWARE.encode()
    return head.startswith(_PNG_SIGNATURE) and marker in head.split(b"IDAT", 1)[0]


def is_deepmf_report(path: Path) -> bool:
    """A Markdown report that starts with deepmf's comment line."""
    return _head(path, len(REPORT_HEADER.encode())) == REPORT_HEADER.encode()


def is_tuned_config(path: Path) -> bool:
    """A config written by ``deepmf tune`` (its ``written_by`` key; deepmf writes it first)."""
    return re.match(rb'\s*\{\s*"written_by"\s*:\s*"' + TUNE_STAMP.encode() + rb'"', _head(path)) is not None


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _foreign_in_checkpoint(folder: Path) -> str | None:
    for entry in sorted(os.listdir(folder)):
        if not (entry in CHECKPOINT_FILES or entry == MARKER) or not _is_file(folder / entry):
            return entry
    return None


def _foreign_in_plots(folder: Path) -> str | None:
    for entry in sorted(os.listdir(folder)):
        if not (_is_file(folder / entry) and is_deepmf_png(folder / entry)):
            return entry
    return None


def _foreign_in_model(folder: Path) -> str | None:
    """The first entry of a model folder that deepmf did not write (relative path), or None."""
    for entry in sorted(os.listdir(folder)):
        path = folder / entry
        if entry in (META_FILE, WEIGHTS_FILE, MARKER) and _is_file(path):
            continue
        if entry in (CHECKPOINT_DIR, PLOTS_DIR) and _is_real_dir(path):
            inner = (_foreign_in_checkpoint if entry == CHECKPOINT_DIR else _foreign_in_plots)(path)
            if inner is None:
                continue
            return f"{entry}/{inner}"
        if is_leftover(path, CHECKPOINT_DIR):
            continue
        return entry
    return None


def _existing_folder(path: Path) -> list[str]:
    """The entries of an existing real folder; OutputError for a link or anything that is not a folder."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        raise OutputError(f"cannot read {path}: {exc.strerror}", errno=exc.errno, filename=str(path)) from None
    if stat.S_ISLNK(mode):
        raise OutputError(f"{path} is a symbolic link; deepmf does not replace links: give a real folder",
                          filename=str(path))
    if not stat.S_ISDIR(mode):
        raise OutputError(f"{path} exists and is not a folder; choose another path", filename=str(path))
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        raise OutputError(f"cannot read {path}: {exc.strerror}", errno=exc.errno, filename=str(path)) from None


def has_unfinished_run(folder: Path) -> bool:
    """True when ``folder`` holds a training checkpoint."""
    return _has_format(folder / CHECKPOINT_DIR / CHECKPOINT_JSON, CHECKPOINT_FORMAT)


def is_model_folder(folder: Path) -> bool:
    """True when ``folder`` holds a saved deepmf model (``model.json`` of deepmf's format)."""
    return _has_format(folder / META_FILE, MODEL_FORMAT)


def check_model_target(path: str | os.PathLike[str], *, overwrite: bool) -> None:
    """Raise OutputError unless a model folder may be written at ``path`` (see the module docstring).

    Args:
        path: where the model folder goes; it need not exist.
        overwrite: consent to replace an existing deepmf model folder.
    """
    folder = Path(path)
    if not os.path.lexists(folder):
        return
    entries = _existing_folder(folder)
    if not entries:
        return
    ours = is_model_folder(folder) or has_unfinished_run(folder) or is_marked(folder)
    if not ours:
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise OutputError(f"{folder} is not a deepmf model folder (it holds {shown}); deepmf replaces only "
                          "its own model folders: choose another path", filename=str(folder))
    foreign = _foreign_in_model(folder)
    if foreign is not None:
        raise OutputError(f"{folder} holds {foreign}, which deepmf did not write; move it away or choose "
                          "another folder", filename=str(folder))
    if not overwrite:
        what = ("a deepmf model" if is_model_folder(folder)
                else "the checkpoint of an unfinished run (continue it with --resume)")
        raise OutputError(f"{folder} already holds {what}; replace it with --force (overwrite=True in Python) "
                          "or choose another folder", filename=str(folder))


def check_checkpoint_target(path: str | os.PathLike[str]) -> None:
    """Raise OutputError unless ``path`` is absent or a folder of checkpoint files only."""
    folder = Path(path)
    if not os.path.lexists(folder):
        return
    _existing_folder(folder)
    foreign = _foreign_in_checkpoint(folder)
    if foreign is not None:
        raise OutputError(f"{folder} holds {foreign}, which is not a deepmf checkpoint file; move it away or "
                          "choose another folder", filename=str(folder))


def check_run_folder(path: str | os.PathLike[str], *, force: bool, resume: bool) -> None:
    """Before a training run writes into ``path`` (``train --out``): refuse what it could not write.

    A fresh run needs a new path, an empty folder, or ``force`` over a deepmf model folder; ``resume`` needs a
    checkpoint in ``path`` (the run's own folder, so no ``force``).

    Raises:
        ConfigError: ``resume`` and no checkpoint to continue.
        OutputError: ``path`` is not deepmf's, holds a user's file, or holds a model and ``force`` is not set.
    """
    folder = Path(path)
    refuse_current_folder(Path(os.path.abspath(folder)))  # before training, not at the final save
    recover(folder)  # what a killed earlier run left beside the folder
    if resume:
        recover(folder / CHECKPOINT_DIR)
        if not has_unfinished_run(folder):
            raise ConfigError(f"nothing to resume: {folder} holds no checkpoint ({CHECKPOINT_DIR}/"
                              f"{CHECKPOINT_JSON}); train without --resume to start afresh")
    check_model_target(folder, overwrite=force or resume)
