"""Crash-safe folder writes (``replace_directory``), for saved models and checkpoints.

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
marker goes last, so a partly removed folder is still recognised. Every change on disk goes through
``primitives``, every system error becomes an ``OutputError`` naming the path.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from deepmf.errors import OutputError
from deepmf.fsutil import primitives
from deepmf.fsutil.paths import make_folder, output_error
from deepmf.fsutil.primitives import MARKER

_LEFTOVER_KINDS = ("tmp", "new", "old")

try:  # Unix only; elsewhere folders are not locked (one writer at a time is then the user's business)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


# ---- locks -------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``folder`` (no lock where the system offers none, e.g. some NFS mounts)."""
    fd = -1
    with contextlib.suppress(OSError):
        fd = primitives.open_folder(folder)
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
        fd = primitives.open_folder(folder)
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
            return handle.read(len(primitives.MARKER_TEXT) + 1) == primitives.MARKER_TEXT
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
                    primitives.rename_new(found[kind][-1], target)
                    found[kind].pop()
                    break
    if is_marked(target):  # a kill came between the swap and the marker's removal
        primitives.unlink_quietly(target / MARKER)
    for kind, paths in found.items():
        if kind != "tmp" and not os.path.lexists(target):  # keep what might still be put back
            continue
        for path in paths:  # a .tmp never holds the only copy of anything: always garbage when unused
            fd = _lock_now(path)
            if fd is None or (fd == -1 and kind == "tmp"):  # in use, or cannot tell
                continue
            try:
                primitives.remove_marked(path)
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
        primitives.mark(temp)
    except BaseException:  # disk full: a folder with a half-written marker would be a stranger's forever
        with contextlib.suppress(OSError):
            os.rmdir(temp)
        if fd is not None and fd >= 0:
            os.close(fd)
        raise
    return temp, -1 if fd is None else fd


def _swap_by_renames(temp: Path, target: Path) -> Path:
    """The three-rename swap where the file system cannot exchange; returns where the old folder went."""
    token = temp.name[len(target.name) + 2 : -len(".tmp")]
    new, old = (target.with_name(f".{target.name}.{token}.{kind}") for kind in ("new", "old"))
    primitives.rename_new(temp, new)
    primitives.rename_new(target, old)
    try:
        primitives.rename_new(new, target)
    except BaseException:
        with contextlib.suppress(OSError):
            primitives.rename_new(old, target)
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
        os.chmod(temp, 0o777 & ~primitives.umask())  # created 0700 so nobody reads it half-written
        with _locked(parent):
            _recover_locked(target)
            if os.path.lexists(target):
                check(target)
                for name in keep:
                    primitives.carry(target / name, temp / name)
                primitives.mark(target)
                if not primitives.exchange(temp, target):
                    old = _swap_by_renames(temp, target)
                    temp = None  # it is the target now
                    primitives.remove_marked(old)
            else:
                primitives.rename_new(temp, target)
                temp = None
            primitives.unlink_quietly(target / MARKER)  # it marked the temp folder; a complete target needs none
            if durable:
                primitives.fsync_folder(parent)
        if temp is not None:  # after an exchange it holds the old folder
            primitives.remove_marked(temp)
            temp = None
    except OSError as exc:
        if isinstance(exc, OutputError):
            raise
        raise output_error(exc, target) from None
    finally:
        if temp is not None:
            primitives.remove_marked(temp)
        if fd >= 0:
            os.close(fd)
