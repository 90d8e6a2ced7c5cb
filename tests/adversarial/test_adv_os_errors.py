"""The system refuses a write (disk full, read-only, permission denied): one line, exit 2, the old files kept.

Disk-full and read-only file systems cannot be made by a test without root mounts, so the refusal is injected
where the system would raise it (``OSError`` with the real errno from the primitive deepmf calls); a real
``chmod`` case runs too when the tests do not run as root (root ignores permissions).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from _checks import FAST, assert_one_line_exit_2

import deepmf.fsutil
import deepmf.fsutil.files
import deepmf.io
import deepmf.training.checkpoint
from deepmf.errors import OutputError


def _refuse(code: int):
    def raiser(*args, **kwargs):
        raise OSError(code, os.strerror(code), str(args[0]) if args else None)

    return raiser


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT, errno.EIO])
def test_disk_full_while_saving_the_model_keeps_the_old_one(run, ratings_csv: Path, model_dir: Path,
                                                            monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    old = {name: (model_dir / name).read_bytes() for name in ("model.json", "model.safetensors")}
    monkeypatch.setattr(deepmf.io, "write_new_file", _refuse(code))
    assert_one_line_exit_2(run("train", ratings_csv, "--out", model_dir, "--force", *FAST), os.strerror(code))
    assert {name: (model_dir / name).read_bytes() for name in old} == old
    assert sorted(p.name for p in model_dir.parent.iterdir()) == ["model"]  # no temp folder left
    # The new run's checkpoint is there: once there is room again, --resume saves its model.
    monkeypatch.undo()
    assert run("train", ratings_csv, "--out", model_dir, "--resume", *FAST)[0] == 0
    assert (model_dir / "model.json").read_bytes() != old["model.json"]


def test_disk_full_while_writing_a_checkpoint(run, ratings_csv: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deepmf.training.checkpoint, "write_new_file", _refuse(errno.ENOSPC))
    assert_one_line_exit_2(run("train", ratings_csv, "--out", tmp_path / "run", *FAST),
                           "No space left on device")
    assert [p.name for p in tmp_path.iterdir()] in ([], ["run"])
    assert not list((tmp_path / "run").iterdir()) if (tmp_path / "run").exists() else True


def test_disk_full_while_writing_the_report(run, ratings_csv: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deepmf.fsutil.files, "write_new_file", _refuse(errno.ENOSPC))
    assert_one_line_exit_2(run("train", ratings_csv, "--report", tmp_path / "report", *FAST),
                           "No space left on device")
    assert not [p for p in (tmp_path / "report").iterdir()]  # no half-written file, no temp file


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
@pytest.mark.parametrize("flag", ["--out", "--report"])
def test_read_only_or_forbidden_output_folder(run, ratings_csv: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch, code: int, flag: str) -> None:
    monkeypatch.setattr(Path, "mkdir", _refuse(code))
    monkeypatch.setattr(os, "mkdir", _refuse(code))
    assert_one_line_exit_2(run("train", ratings_csv, flag, tmp_path / "new", *FAST), os.strerror(code))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_read_only_plot_folder(run, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                               unchanged, code: int) -> None:
    check = unchanged(tmp_path)
    monkeypatch.setattr(Path, "mkdir", _refuse(code))
    assert_one_line_exit_2(run("plot", model_dir, "--out", tmp_path / "plots"), os.strerror(code))
    check()


def test_read_only_existing_model_folder_is_left_as_it_was(trained, model_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch, unchanged) -> None:
    check = unchanged(model_dir.parent)
    monkeypatch.setattr(os, "mkdir", _refuse(errno.EROFS))  # the temp folder beside it cannot be made
    with pytest.raises(OutputError, match="Read-only file system") as info:
        trained.save(model_dir)
    assert isinstance(info.value, OSError) and info.value.errno == errno.EROFS
    check()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores file permissions")
def test_a_real_read_only_folder(run, ratings_csv: Path, tmp_path: Path, unchanged) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        check = unchanged(tmp_path)
        assert_one_line_exit_2(run("train", ratings_csv, "--out", locked / "model", *FAST), "Permission denied")
        check()
    finally:
        locked.chmod(0o755)


def test_disk_full_while_marking_the_temp_folder_leaves_nothing(trained, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A full disk let the marker file be created but not written: the temp folder then held an empty marker,
    # which no later write recognised as deepmf's, so it stayed beside the model forever.
    real = Path.write_bytes

    def half_written(path: Path, data: bytes) -> int:
        if path.name == deepmf.fsutil.MARKER:
            real(path, b"")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real(path, data)

    monkeypatch.setattr(Path, "write_bytes", half_written)
    with pytest.raises(OutputError, match="No space left on device"):
        trained.save(tmp_path / "model")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_demo_refuses_an_output_folder_it_cannot_write_before_training(
        run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unchanged, code: int) -> None:
    import deepmf.demo

    check = unchanged(tmp_path)
    monkeypatch.setattr(deepmf.demo, "demo_data", lambda *a: pytest.fail("trained before checking --out"))
    monkeypatch.setattr(Path, "mkdir", _refuse(code))
    assert_one_line_exit_2(run("demo", "--out", tmp_path / "demo"), os.strerror(code))
    check()


def test_demo_refuses_a_users_report_before_training(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     unchanged) -> None:
    import deepmf.demo

    (tmp_path / "report.md").write_text("my notes")
    check = unchanged(tmp_path)
    monkeypatch.setattr(deepmf.demo, "demo_data", lambda *a: pytest.fail("trained before checking --out"))
    assert_one_line_exit_2(run("demo", "--out", tmp_path), "report.md exists and was not written by deepmf")
    check()
