"""Crash-safe writes that never touch what deepmf did not write.

* ``files``: ``write_file`` (bytes) and ``writing_file`` (a temp path a streaming writer fills): temp file +
  fsync + rename; an existing file is replaced only when the caller's ``ours`` recognises it as deepmf's.
* ``swap``: ``replace_directory`` for saved models and checkpoints: a marked temp folder swapped with the target
  in one step (or three renames), so a kill leaves the old folder or the new one; ``recover`` cleans up after.
* ``primitives``: the steps every change on disk goes through (rename, exchange, marker, hard link, removal),
  called as this module's attributes so the crash tests can kill the process at each.
* ``paths``: ``as_path``, ``make_folder`` and ``output_error``: every system error becomes an ``OutputError``
  naming the path (read-only, permission denied, disk full, a file where a folder should be).

Hand-written because no maintained library does this: ``atomicwrites`` is archived and handles single files
only, and none recognises its own leftovers before deleting them.
"""

from deepmf.fsutil.files import check_file_target, write_file, write_new_file, writing_file
from deepmf.fsutil.paths import as_path, make_folder, output_error
from deepmf.fsutil.primitives import MARKER
from deepmf.fsutil.swap import is_leftover, is_marked, recover, refuse_current_folder, replace_directory

__all__ = [
    "MARKER",
    "as_path",
    "check_file_target",
    "is_leftover",
    "is_marked",
    "make_folder",
    "output_error",
    "recover",
    "refuse_current_folder",
    "replace_directory",
    "write_file",
    "write_new_file",
    "writing_file",
]
