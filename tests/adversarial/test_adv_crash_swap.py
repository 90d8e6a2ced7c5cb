"""A kill at every step of a folder swap leaves the old folder or the new one, and the next write cleans up.

Each case runs the swap in a fresh Python process whose every change on disk (rename, exchange, marker write,
hard link, removal) goes through ``deepmf.fsutil.primitives``; the k-th one calls ``os._exit`` instead, as a
SIGKILL would, for k = 1, 2, ... until the swap completes. The child imports only ``deepmf.fsutil`` and
``deepmf.folders`` (not the package's heavy ``__init__``), so each run costs milliseconds. Both swaps are
covered: the one-step ``RENAME_EXCHANGE`` and the three-rename fallback for file systems without it.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import deepmf
from deepmf import fsutil
from deepmf.folders import check_model_target

SRC = Path(deepmf.__file__).resolve().parent.parent

CHILD = textwrap.dedent("""
    import os, sys, types
    src, target, fault_at, exchange = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    package = types.ModuleType("deepmf")
    package.__path__ = [os.path.join(src, "deepmf")]
    sys.modules["deepmf"] = package  # skip deepmf/__init__ (torch, pandas): this child only moves files
    from pathlib import Path
    from deepmf import fsutil, folders
    from deepmf.fsutil import primitives

    steps = [0]
    def faulty(original):
        def run(*args, **kwargs):
            steps[0] += 1
            if steps[0] == fault_at:
                os._exit(137)  # as SIGKILL: no finally blocks, no cleanup
            return original(*args, **kwargs)
        return run
    for name in ("exchange", "rename_new", "replace_file", "remove_marked", "mark", "unlink_quietly", "carry"):
        setattr(primitives, name, faulty(getattr(primitives, name)))
    if not exchange:
        primitives.exchange = faulty(lambda first, second: False)  # a file system without RENAME_EXCHANGE

    check = lambda folder: folders.check_model_target(folder, overwrite=True)
    with fsutil.replace_directory(target, check=check, keep=("checkpoint",)) as tmp:
        (tmp / "model.json").write_text('{"format": "deepmf-model", "version": "new"}')
        (tmp / "model.safetensors").write_text("new weights")
    sys.exit(0)
""")

OLD = {"model.json": '{"format": "deepmf-model", "version": "old"}', "model.safetensors": "old weights"}
NEW = {"model.json": '{"format": "deepmf-model", "version": "new"}', "model.safetensors": "new weights"}
CHECKPOINT = '{"format": "deepmf-checkpoint", "epoch": 3}'


def _write_old(target: Path) -> None:
    target.mkdir()
    for name, text in OLD.items():
        (target / name).write_text(text)
    (target / "checkpoint").mkdir()
    (target / "checkpoint" / "state.json").write_text(CHECKPOINT)


def _version(target: Path) -> str:
    """"old" or "new" when the folder is one complete version (weights matching the JSON), else fail."""
    files = {name: (target / name).read_text() for name in OLD}
    assert files in (OLD, NEW), files
    return json.loads(files["model.json"])["version"]


def _crash_at(step: int, target: Path, exchange: bool) -> int:
    child = subprocess.run([sys.executable, "-c", CHILD, str(SRC), str(target), str(step), "1" if exchange else "0"],
                           capture_output=True, text=True, timeout=60)
    assert child.returncode in (0, 137), child.stderr
    return child.returncode


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "three-renames"])
@pytest.mark.parametrize("existing", [True, False], ids=["replace", "create"])
def test_a_kill_at_every_step_leaves_the_old_or_the_new_folder(tmp_path: Path, exchange: bool,
                                                               existing: bool) -> None:
    completed, step = False, 0
    while not completed:
        step += 1
        assert step < 40, "the swap never completed"
        parent = tmp_path / f"step{step}"
        parent.mkdir()
        target = parent / "model"
        (parent / "notes.txt").write_text("the user's")
        decoy = parent / ".model.0123abcd.tmp"  # named like a leftover, but unmarked and not empty: the user's
        decoy.mkdir()
        (decoy / "keep.txt").write_text("mine")
        if existing:
            _write_old(target)
        completed = _crash_at(step, target, exchange) == 0
        fsutil.recover(target)  # what every reader and writer does first
        if existing or target.exists():
            version = _version(target)
            assert version == "new" or not completed
            if existing:  # the checkpoint survives the swap, in either version
                assert (target / "checkpoint" / "state.json").read_text() == CHECKPOINT
        # The next save completes and leaves nothing behind but the target and the user's files.
        with fsutil.replace_directory(target, check=lambda f: check_model_target(f, overwrite=True)) as tmp:
            for name, text in NEW.items():
                (tmp / name).write_text(text)
        assert _version(target) == "new"
        assert sorted(p.name for p in parent.iterdir()) == [".model.0123abcd.tmp", "model", "notes.txt"]
        assert (decoy / "keep.txt").read_text() == "mine" and (parent / "notes.txt").read_text() == "the user's"
    # Every step was interrupted once: creating is the temp folder's marker, a rename and the marker's removal;
    # replacing adds the checkpoint's hard links, the old folder's marker, the exchange (or the failed exchange
    # and three renames) and the old folder's removal.
    assert step - 1 >= ((6 if exchange else 9) if existing else 3), step


def test_files_and_swap_call_every_step_through_the_primitives_module() -> None:
    # A step imported by name (``from deepmf.fsutil.primitives import rename_new``) would escape the wrapping
    # above, and the crash tests would pass with fewer kill points.
    package = SRC / "deepmf"
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module == "deepmf.fsutil.primitives":
                assert {alias.name for alias in node.names} <= {"MARKER", "MARKER_TEXT"}, path
