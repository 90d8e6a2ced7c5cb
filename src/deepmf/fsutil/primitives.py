"""The primitives every change on disk of ``files`` and ``swap`` goes through, one function a step.

Both modules call them as attributes of this module (``primitives.rename_new(...)``), never through names
imported into their own namespace, so a test that replaces one here (the crash tests wrap each to kill the
process at the k-th step) reaches every call. Keep it that way when adding a call.

Also here: the marker file that tells deepmf's own folders from anybody else's, and the small system helpers
both writers share (the umask, a folder's fsync).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

MARKER = ".deepmf"
MARKER_TEXT = b"written by deepmf; deepmf may replace this folder or remove it when it is a leftover\n"


# ---- renames -----------------------------------------------------------------------------------------------
@functools.cache
def _renameat2_function() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function


_AT_FDCWD, _RENAME_NOREPLACE, _RENAME_EXCHANGE = -100, 1, 2


def _renameat2(source: Path, target: Path, flags: int) -> bool:
    """renameat2(2); False when this system or file system does not support ``flags``."""
    function = _renameat2_function()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target), flags) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), os.fspath(source), None, os.fspath(target))


def exchange(first: Path, second: Path) -> bool:
    """Swap two names atomically; False when the file system cannot."""
    return _renameat2(first, second, _RENAME_EXCHANGE)


def rename_new(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``, which must not exist (FileExistsError otherwise, nothing changed)."""
    if _renameat2(source, target, _RENAME_NOREPLACE):
        return
    if os.path.lexists(target):  # no RENAME_NOREPLACE here: check, then rename (a narrow race remains)
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(target))
    os.rename(source, target)


def replace_file(source: Path, target: Path) -> None:
    os.replace(source, target)


# ---- removals, the marker, hard links ----------------------------------------------------------------------
def remove_marked(folder: Path) -> None:
    """Remove a folder deepmf owns, its marker last; best effort (what is left is removed next time)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            if entry.name == MARKER:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(folder / MARKER)
        os.rmdir(folder)


def unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def mark(folder: Path) -> None:
    if not (folder / MARKER).exists():
        try:
            (folder / MARKER).write_bytes(MARKER_TEXT)
        except BaseException:  # disk full: no half-written marker left in the folder
            unlink_quietly(folder / MARKER)
            raise


def carry(source: Path, destination: Path) -> None:
    """Hard-link the tree at ``source`` into ``destination`` (copies where links are impossible)."""
    if source.is_symlink() or not source.is_dir():
        return
    for folder, _, files in os.walk(source):
        inner = destination / Path(folder).relative_to(source)
        inner.mkdir(exist_ok=True)
        for name in files:
            if not os.path.islink(os.path.join(folder, name)):
                try:
                    os.link(os.path.join(folder, name), inner / name)
                except OSError:
                    shutil.copy2(os.path.join(folder, name), inner / name)


# ---- shared system helpers (no change on disk of their own) -----------------------------------------------
def open_folder(folder: Path) -> int:
    return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


def fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = open_folder(folder)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def umask() -> int:
    """The process umask, read without changing it where Linux shows it (setting it to read it, as the
    fallback does, would briefly give files made by other threads no umask at all)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask
