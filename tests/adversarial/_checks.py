"""Checks shared by the adversarial suite: one clean line, exit code 2, nothing lost.

Every test here feeds deepmf one class of bad input or fault (see the README's "Reliability" section) and
asserts the three promises: the CLI prints exactly one line on stderr and exits with code 2 (the Python API
raises a DeepMFError subclass); no traceback; and the files around are byte for byte as they were.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path


def snapshot(root: Path) -> dict[str, str]:
    """Every path under ``root`` (hidden ones too) with its kind and content hash: compare before and after."""
    found: dict[str, str] = {}
    if not os.path.lexists(root):
        return found
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            mode = os.lstat(path).st_mode
            key = str(path.relative_to(root))
            if stat.S_ISLNK(mode):
                found[key] = f"link:{os.readlink(path)}"
            elif stat.S_ISDIR(mode):
                found[key] = "dir"
            else:
                found[key] = "file:" + hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def assert_one_line_exit_2(result: tuple[int, str, str], *needles: str) -> str:
    """The CLI refused: exit 2, nothing on stdout, one line on stderr containing every needle; returns it."""
    code, out, err = result
    assert code == 2, (code, out, err)
    assert out == "", out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


FAST = ("--factors", "3", "--epochs", "2", "--threads", "1", "--quiet")
