"""Crash-safe writes that never touch what deepmf did not write.

**Files** (``write_file``): a temp file beside the target is written, fsynced and renamed over the target, so a
reader sees the old file or the new one. An existing target is replaced only when the caller's ``ours`` test
recognises it as deepmf's own (a PNG deepmf drew, a report it wrote); anything else is an ``OutputError``.

**Folders** (``replace_directory``), for saved models and checkpoints:

1. a temp folder ``.NAME.<8 hex>.tmp`` is created beside the target with the marker file ``.deepmf`` in it, and
   locked (``flock``) while in use, so no other process takes it for a leftover;
2. the caller fills it; then, under a lock on the parent folder, an existing target is checked by the caller's
   rule (``check``), entries to keep (``keep``: the training checkpoint) are hard-linked into the temp folder,
   and the target gets the marker too;
3. the two folders swap names in one step (``renameat2(RENAME_EXCHANGE)``; a new target is created with
   ``RENAME_NOREPLACE``), so at every instant the target is the old complete folder or the new one;
4. the marker is removed from the target, and the old folder, now under the temp name, is removed.

A kill at any point leaves the target complete, old or new, and at most a marked temp folder, which the next
write beside that target (``recover``) removes. Where the file system cannot exchange two names (NFS, macOS,
Windows), step 3 is three renames: temp -> ``.NAME.<hex>.new`` (complete), target -> ``.NAME.<hex>.old``,
new -> target; if a kill leaves no target, ``recover`` (run before every write and by readers that find no
target) renames the complete ``.new`` folder, else the ``.old`` one, back into place.

Only real folders with exactly those names that hold the marker (or nothing at all) are ever removed, and the
marker goes last, so a partly removed folder is still recognised. Every system error becomes an
``OutputError`` naming the path (read-only, permission denied, disk full, a file where a folder should be).

Hand-written because no maintained library does this: ``atomicwrites`` is archived and handles single files
only, and none recognises its own leftovers before deleting them.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import re
import secrets
import shutil
import stat
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from deepmf.errors import ConfigError, OutputError

MARKER = ".deepmf"
_MARKER_TEXT = b"written by deepmf; deepmf may replace this folder or remove it when it is a leftover\n"
_LEFTOVER_KINDS = ("tmp", "new", "old")

try:  # Unix only; elsewhere folders are not locked (one writer at a time is then the user's business)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


def as_path(value: object, what: str = "path") -> Path:
    """``value`` as a Path; ConfigError (a ValueError) for anything but a non-empty str or os.PathLike."""
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes):
        path = Path(value)
        if str(value) != "" and "\0" not in str(path):
            return path
    raise ConfigError(f"{what} must be a non-empty str or os.PathLike, got {type(value).__name__} {value!r}")


# ---- system errors -----------------------------------------------------------------------------------------
def output_error(exc: OSError, path: str | os.PathLike[str], action: str = "write") -> OutputError:
    """One-line OutputError for a refused write ("cannot write runs/mf: No space left on device")."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOTDIR, errno.EEXIST) and not exc.strerror:
        reason = "a file is in the way"
    return OutputError(f"cannot {action} {path}: {reason}", errno=exc.errno, filename=os.fspath(path))


def make_folder(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and its parents) if missing; OutputError when a file is in the way or it cannot be made."""
    folder = Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{folder} exists and is not a folder", errno=errno.EEXIST,
                          filename=str(folder)) from None
    except NotADirectoryError:
        raise OutputError(f"cannot create {folder}: part of the path is a file, not a folder",
                          errno=errno.ENOTDIR, filename=str(folder)) from None
    except OSError as exc:
        raise output_error(exc, folder, "create") from None
    return folder


# ---- the primitives every change goes through (the crash tests wrap them to kill the process) ------------
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


def _exchange(first: Path, second: Path) -> bool:
    """Swap two names atomically; False when the file system cannot."""
    return _renameat2(first, second, _RENAME_EXCHANGE)


def _rename_new(source: Path, target: Path) -> None:
    """Rename ``source`` to ``target``, which must not exist (FileExistsError otherwise, nothing changed)."""
    if _renameat2(source, target, _RENAME_NOREPLACE):
        return
    if os.path.lexists(target):  # no RENAME_NOREPLACE here: check, then rename (a narrow race remains)
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), os.fspath(target))
    os.rename(source, target)


def _replace_file(source: Path, target: Path) -> None:
    os.replace(source, target)


def _remove_marked(folder: Path) -> None:
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


# ---- locks -------------------------------------------------------------------------------------------------
def _open_folder(folder: Path) -> int:
    return os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``folder`` (no lock where the system offers none, e.g. some NFS mounts)."""
    fd = -1
    with contextlib.suppress(OSError):
        fd = _open_folder(folder)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        if fd >= 0:
            os.close(fd)


def _lock_now(folder: Path) -> int | None:
    """An fd holding an exclusive flock on ``folder``; None when another process (or fd) holds it.

    Returns -1 when locks are not supported: the caller cannot tell whether the folder is in use.
    """
    try:
        fd = _open_folder(folder)
    except OSError:
        return None
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:
        os.close(fd)
        return -1
    return fd


# ---- leftovers ---------------------------------------------------------------------------------------------
def _leftover_kind(path: Path, target_name: str) -> str | None:
    """"tmp", "new" or "old" when ``path`` is deepmf's own leftover of a write of ``target_name`` beside it.

    Only real folders named exactly ``.NAME.<8 hex>.KIND`` that hold the marker or nothing at all count.
    """
    kinds = "|".join(_LEFTOVER_KINDS)
    match = re.fullmatch(rf"\.{re.escape(target_name)}\.[0-9a-f]{{8}}\.({kinds})", path.name)
    if match and (is_marked(path) or _is_empty_folder(path)):
        return match.group(1)
    return None


def is_leftover(path: Path, target_name: str) -> bool:
    """True when ``path`` is a folder deepmf left while writing ``target_name`` beside it (see ``leftovers``)."""
    return _leftover_kind(path, target_name) is not None


def is_marked(folder: Path) -> bool:
    """True when ``folder`` is a real folder holding deepmf's marker file (a regular file, deepmf's text)."""
    marker = folder / MARKER
    try:
        if not (stat.S_ISDIR(os.lstat(folder).st_mode) and stat.S_ISREG(os.lstat(marker).st_mode)):
            return False
        with open(marker, "rb") as handle:
            return handle.read(len(_MARKER_TEXT) + 1) == _MARKER_TEXT
    except OSError:
        return False


def _is_empty_folder(folder: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(folder).st_mode) and not any(os.scandir(folder))
    except OSError:
        return False


def _leftovers(target: Path) -> dict[str, list[Path]]:
    """deepmf's own leftovers beside ``target`` by kind ("tmp", "new", "old"), oldest first."""
    found: dict[str, list[Path]] = {kind: [] for kind in _LEFTOVER_KINDS}
    try:
        entries = [Path(entry.path) for entry in os.scandir(target.parent)]
    except OSError:
        return found
    for path in entries:
        kind = _leftover_kind(path, target.name)
        if kind is not None:
            found[kind].append(path)
    for paths in found.values():
        paths.sort(key=lambda p: (_mtime(p / MARKER), p.name))
    return found


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0


def _recover_locked(target: Path) -> None:
    """Put back a target that a kill during a three-rename swap left missing; remove unused leftovers."""
    found = _leftovers(target)
    if not os.path.lexists(target):
        for kind in ("new", "old"):  # a complete new folder wins over the old one
            if found[kind]:
                with contextlib.suppress(OSError):
                    _rename_new(found[kind][-1], target)
                    found[kind].pop()
                    break
    if is_marked(target):  # a kill came between the swap and the marker's removal
        _unlink_quietly(target / MARKER)
    for kind, paths in found.items():
        if kind != "tmp" and not os.path.lexists(target):  # keep what might still be put back
            continue
        for path in paths:  # a .tmp never holds the only copy of anything: always garbage when unused
            fd = _lock_now(path)
            if fd is None or (fd == -1 and kind == "tmp"):  # in use, or cannot tell
                continue
            try:
                _remove_marked(path)
            finally:
                if fd >= 0:
                    os.close(fd)


def recover(target: str | os.PathLike[str]) -> None:
    """Finish what an interrupted ``replace_directory`` of ``target`` left; a no-op when nothing was left.

    Readers call it when they find no target; it needs write access to the parent folder, and silently does
    nothing without it.
    """
    path = Path(os.path.abspath(target))
    if not path.parent.is_dir():
        return
    with contextlib.suppress(OSError), _locked(path.parent):
        _recover_locked(path)


# ---- files -------------------------------------------------------------------------------------------------
def _umask() -> int:
    """The process umask, read without changing it where Linux shows it (setting it to read it, as the
    fallback does, would briefly give files made by other threads no umask at all)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):
        fd = _open_folder(folder)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


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


def write_file(path: str | os.PathLike[str], data: bytes, *, ours: Callable[[Path], bool]) -> Path:
    """Write ``data`` to ``path`` atomically; an existing ``path`` is replaced only when ``ours(path)`` is True.

    Args:
        path: the file to create or replace; its folder is created if needed.
        data: the new contents.
        ours: recognises a file deepmf wrote earlier (called only on an existing regular file).

    Raises:
        OutputError: ``path`` exists and is not deepmf's (or not a regular file: a folder, a link, a device),
            or the system refused (read-only, permission denied, disk full). Nothing was changed.
    """
    target = Path(path)
    make_folder(target.parent)
    existing = check_file_target(target, ours=ours)
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        write_new_file(temp, data)
        # A plain open() would give the umask's permissions; keep them.
        os.chmod(temp, 0o666 & ~_umask())
        if not existing:
            _rename_new(temp, target)
        else:
            _replace_file(temp, target)
    except FileExistsError:
        _unlink_quietly(temp)
        raise OutputError(f"{target} appeared while deepmf was writing it; it was left as it is",
                          errno=errno.EEXIST, filename=str(target)) from None
    except OSError as exc:
        _unlink_quietly(temp)
        raise output_error(exc, target) from None
    except BaseException:
        _unlink_quietly(temp)
        raise
    _fsync_folder(target.parent)
    return target


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


# ---- folders -----------------------------------------------------------------------------------------------
def _new_temp_folder(target: Path) -> tuple[Path, int]:
    """A marked, locked temp folder beside ``target`` (call with the parent locked)."""
    while True:
        temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.mkdir(temp, 0o700)
            break
        except FileExistsError:
            continue
    fd = _lock_now(temp)
    try:
        _mark(temp)
    except BaseException:  # disk full: a folder with a half-written marker would be a stranger's forever
        with contextlib.suppress(OSError):
            os.rmdir(temp)
        if fd is not None and fd >= 0:
            os.close(fd)
        raise
    return temp, -1 if fd is None else fd


def _carry(source: Path, destination: Path) -> None:
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


def _mark(folder: Path) -> None:
    if not (folder / MARKER).exists():
        try:
            (folder / MARKER).write_bytes(_MARKER_TEXT)
        except BaseException:  # disk full: no half-written marker left in the folder
            _unlink_quietly(folder / MARKER)
            raise


def _swap_by_renames(temp: Path, target: Path) -> Path:
    """The three-rename swap where the file system cannot exchange; returns where the old folder went."""
    token = temp.name[len(target.name) + 2 : -len(".tmp")]
    new, old = (target.with_name(f".{target.name}.{token}.{kind}") for kind in ("new", "old"))
    _rename_new(temp, new)
    _rename_new(target, old)
    try:
        _rename_new(new, target)
    except BaseException:
        with contextlib.suppress(OSError):
            _rename_new(old, target)
        raise
    return old


def refuse_current_folder(target: Path) -> None:
    """OutputError when ``target`` is the current folder or holds it: the swap would leave this process (and
    the shell that started it) in a deleted folder, where every relative path fails."""
    try:
        here = Path(os.getcwd())
    except OSError:  # already in a deleted folder: nothing to protect
        return
    if here == target or target in here.parents:
        raise OutputError(f"{target} is the current folder or holds it; deepmf replaces the folder it writes: "
                          "choose a new folder", filename=str(target))


@contextlib.contextmanager
def replace_directory(
    path: str | os.PathLike[str],
    *,
    check: Callable[[Path], None],
    keep: Sequence[str] = (),
    durable: bool = True,
) -> Iterator[Path]:
    """Yield an empty temp folder beside ``path``; when the block ends without error it replaces ``path`` whole.

    Args:
        path: the folder to create or replace.
        check: called on an existing ``path`` before the caller writes and again just before the swap; it
            raises (OutputError) when ``path`` may not be replaced.
        keep: names of entries of the existing folder to carry into the new one (hard links).
        durable: fsync the parent folder after the swap (see ``write_new_file``).

    Raises:
        OutputError: ``check`` refused, or the system refused (read-only, permission denied, disk full, a file
            where a folder should be). ``path`` is then as it was.
    """
    target = Path(os.path.abspath(path))
    refuse_current_folder(target)
    parent = make_folder(target.parent)
    temp, fd = None, -1
    try:
        with _locked(parent):
            _recover_locked(target)
            if os.path.lexists(target):
                check(target)
            temp, fd = _new_temp_folder(target)
        yield temp
        os.chmod(temp, 0o777 & ~_umask())  # created 0700 so nobody reads it half-written
        with _locked(parent):
            _recover_locked(target)
            if os.path.lexists(target):
                check(target)
                for name in keep:
                    _carry(target / name, temp / name)
                _mark(target)
                if not _exchange(temp, target):
                    old = _swap_by_renames(temp, target)
                    temp = None  # it is the target now
                    _remove_marked(old)
            else:
                _rename_new(temp, target)
                temp = None
            _unlink_quietly(target / MARKER)  # it marked the temp folder; a complete target needs none
            if durable:
                _fsync_folder(parent)
        if temp is not None:  # after an exchange it holds the old folder
            _remove_marked(temp)
            temp = None
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise output_error(exc, target) from None
    finally:
        if temp is not None:
            _remove_marked(temp)
        if fd >= 0:
            os.close(fd)
