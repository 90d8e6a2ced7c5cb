"""Crash-safe file writes that never replace a file deepmf did not write.

``write_file`` for bytes, ``writing_file`` for writers that stream to a path: a temp file beside the target is
written, fsynced and renamed over the target, so a reader sees the old file or the new one. An existing target
is replaced only when the caller's ``ours`` test recognises it as deepmf's own (a PNG deepmf drew, a report it
wrote); anything else is an ``OutputError``. Every change on disk goes through ``primitives``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from deepmf.errors import OutputError
from deepmf.fsutil import primitives
from deepmf.fsutil.paths import make_folder, output_error


def write_new_file(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write ``data`` to a new file inside a folder being built (no rename needed).

    ``durable`` fsyncs it, so it also survives a power cut, not only a killed process (whose writes the kernel
    keeps anyway); per-epoch checkpoints skip that: ten milliseconds each would double a fast run's time.
    """
    with open(path, "xb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())


def check_file_target(path: str | os.PathLike[str], *, ours: Callable[[Path], bool]) -> bool:
    """Raise OutputError unless ``write_file(path, ..., ours=ours)`` may write; True when ``path`` exists."""
    target = Path(path)
    try:
        existing = os.lstat(target)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        raise output_error(exc, target) from None
    if not stat.S_ISREG(existing.st_mode):
        raise OutputError(f"{target} exists and is not a regular file; choose another path",
                          errno=errno.EEXIST, filename=str(target))
    if not ours(target):
        raise OutputError(f"{target} exists and was not written by deepmf; move it away or choose another "
                          "path", errno=errno.EEXIST, filename=str(target))
    return True


@contextlib.contextmanager
def writing_file(path: str | os.PathLike[str], *, ours: Callable[[Path], bool]) -> Iterator[Path]:
    """Yield a new temp file's path beside ``path``; when the block ends without error the temp file, fsynced,
    replaces ``path`` atomically; on error it is removed and ``path`` is left as it was.

    For writers that stream to a file name (pyarrow's Parquet and CSV writers); ``write_file`` for bytes.

    Args:
        path: the file to create or replace; its folder is created if needed.
        ours: recognises a file deepmf wrote earlier (called only on an existing regular file, before the
            block runs).

    Raises:
        OutputError: ``path`` exists and is not deepmf's (or not a regular file: a folder, a link, a device),
            or the system refused (read-only, permission denied, disk full). Nothing was changed.
    """
    target = Path(path)
    make_folder(target.parent)
    existing = check_file_target(target, ours=ours)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        write_new_file(temp, b"", durable=False)  # exclusive: never someone else's file
    except OSError as exc:
        raise output_error(exc, target) from None
    try:
        yield temp
        with open(temp, "rb+") as handle:
            os.fsync(handle.fileno())
        # A plain open() would give the umask's permissions; keep them.
        os.chmod(temp, 0o666 & ~primitives.umask())
        if not existing:
            primitives.rename_new(temp, target)
        else:
            primitives.replace_file(temp, target)
    except FileExistsError:
        primitives.unlink_quietly(temp)
        raise OutputError(f"{target} appeared while deepmf was writing it; it was left as it is",
                          errno=errno.EEXIST, filename=str(target)) from None
    except OSError as exc:
        primitives.unlink_quietly(temp)
        if isinstance(exc, OutputError):
            raise
        raise output_error(exc, target) from None
    except BaseException:
        primitives.unlink_quietly(temp)
        raise
    primitives.fsync_folder(target.parent)


def write_file(path: str | os.PathLike[str], data: bytes, *, ours: Callable[[Path], bool]) -> Path:
    """Write ``data`` to ``path`` atomically; an existing ``path`` is replaced only when ``ours(path)`` is True.

    Raises:
        OutputError: as ``writing_file``.
    """
    with writing_file(path, ours=ours) as temp, open(temp, "wb") as handle:
        handle.write(data)
    return Path(path)
