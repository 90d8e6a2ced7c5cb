"""Output paths that are not deepmf's to replace: every command and ``save`` refuses them, and nothing is lost.

Each case builds the user's files, snapshots the tree, runs the attack (the real CLI in-process, or the Python
API), and checks: one line, exit code 2 (an OutputError/ConfigError in Python), and the tree exactly as before.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from _checks import FAST, assert_one_line_exit_2

from deepmf import fsutil
from deepmf.errors import ConfigError, OutputError
from deepmf.recommender import Recommender


def _users_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "thesis.txt").write_text("three years of work")
    (root / "sub").mkdir()
    (root / "sub" / "data.csv").write_text("a,b\n1,2\n")
    return root


# ---- train --out -------------------------------------------------------------------------------------------
def test_train_out_holding_a_users_files_is_refused(run, ratings_csv: Path, tmp_path: Path, unchanged) -> None:
    out = _users_folder(tmp_path / "mine")
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("train", ratings_csv, "--out", out, *FAST), "is not a deepmf model folder")
    check()


def test_train_out_holding_a_users_files_is_refused_even_with_force(run, ratings_csv: Path, tmp_path: Path,
                                                                   unchanged) -> None:
    out = _users_folder(tmp_path / "mine")
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("train", ratings_csv, "--out", out, "--force", *FAST), "not a deepmf model")
    check()


def test_train_out_naming_a_regular_file_is_refused(run, ratings_csv: Path, tmp_path: Path, unchanged) -> None:
    out = tmp_path / "file.txt"
    out.write_text("mine")
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("train", ratings_csv, "--out", out, "--force", *FAST), "is not a folder")
    check()


def test_train_out_below_a_regular_file_is_refused(run, ratings_csv: Path, tmp_path: Path, unchanged) -> None:
    (tmp_path / "file.txt").write_text("mine")
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("train", ratings_csv, "--out", tmp_path / "file.txt" / "model", *FAST),
                           "file.txt")
    check()


def test_train_out_naming_a_device_is_refused(run, ratings_csv: Path) -> None:
    assert_one_line_exit_2(run("train", ratings_csv, "--out", "/dev/null", "--force", *FAST), "not a folder")
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_train_out_naming_a_symlink_is_refused(run, ratings_csv: Path, tmp_path: Path, trained,
                                               unchanged) -> None:
    real = trained.save(tmp_path / "real")
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("train", ratings_csv, "--out", tmp_path / "link", "--force", *FAST),
                           "symbolic link")
    check()


def test_train_out_naming_the_data_folder_is_refused(run, ratings_csv: Path, unchanged) -> None:
    check = unchanged(ratings_csv.parent)
    assert_one_line_exit_2(run("train", ratings_csv, "--out", ratings_csv.parent, "--force", *FAST),
                           "not a deepmf model folder")
    check()


def test_train_out_inside_the_data_folder_leaves_the_data_alone(run, ratings_csv: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "ratings.csv").write_bytes(ratings_csv.read_bytes())
    code, _, err = run("train", data / "ratings.csv", "--out", data / "model", *FAST)
    assert code == 0, err
    assert (data / "ratings.csv").read_bytes() == ratings_csv.read_bytes()
    assert sorted(p.name for p in data.iterdir()) == ["model", "ratings.csv"]


def test_a_model_folder_with_a_users_file_is_not_replaced(run, ratings_csv: Path, model_dir: Path,
                                                          unchanged) -> None:
    (model_dir / "notes.txt").write_text("why this model is good")
    check = unchanged(model_dir.parent)
    assert_one_line_exit_2(run("train", ratings_csv, "--out", model_dir, "--force", *FAST),
                           "notes.txt, which deepmf did not write")
    check()


def test_a_users_file_inside_the_checkpoint_folder_is_not_replaced(run, ratings_csv: Path, tmp_path: Path,
                                                                   unchanged) -> None:
    out = tmp_path / "run"
    assert run("train", ratings_csv, "--out", out, *FAST)[0] == 0
    (out / "checkpoint" / "mine.txt").write_text("x")
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("train", ratings_csv, "--out", out, "--force", *FAST), "checkpoint/mine.txt")
    check()


def test_an_existing_model_needs_force_and_force_replaces_it(run, ratings_csv: Path, tmp_path: Path,
                                                             unchanged) -> None:
    out = tmp_path / "run"
    assert run("train", ratings_csv, "--out", out, *FAST)[0] == 0
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("train", ratings_csv, "--out", out, *FAST), "already holds a deepmf model",
                           "--force")
    check()
    assert run("train", ratings_csv, "--out", out, "--force", "--seed", "5", *FAST)[0] == 0
    assert Recommender.load(out).train_config.seed == 5


def test_a_users_dotfile_named_like_the_marker_proves_nothing(run, ratings_csv: Path, tmp_path: Path,
                                                              unchanged) -> None:
    out = _users_folder(tmp_path / "mine")
    (out / fsutil.MARKER).write_text("my own settings\n")
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("train", ratings_csv, "--out", out, "--force", *FAST), "not a deepmf model")
    check()


def test_resume_without_a_checkpoint_says_so(run, ratings_csv: Path, tmp_path: Path, model_dir: Path,
                                             unchanged) -> None:
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("train", ratings_csv, "--out", tmp_path / "new", "--resume", *FAST),
                           "nothing to resume")
    assert_one_line_exit_2(run("train", ratings_csv, "--out", model_dir, "--resume", *FAST), "nothing to resume")
    check()


def test_resume_of_a_finished_run_has_nothing_to_do(run, ratings_csv: Path, tmp_path: Path, unchanged) -> None:
    out = tmp_path / "run"
    assert run("train", ratings_csv, "--out", out, *FAST)[0] == 0
    check = unchanged(tmp_path)
    code, stdout, _ = run("train", ratings_csv, "--out", out, "--resume", *FAST)
    assert code == 0 and "nothing to do" in stdout
    check()  # the model was not written again


def test_evaluate_out_refuses_a_users_fold_folder_before_training(run, ratings_csv: Path, tmp_path: Path,
                                                                  unchanged) -> None:
    _users_folder(tmp_path / "folds" / "kfold_2#1")
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("evaluate", ratings_csv, "--model", "mf", "--split", "kfold:2", "--out",
                               tmp_path / "folds", "--epochs", "1", "--quiet"), "kfold_2#1")
    check()


# ---- Recommender.save ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["file", "users folder", "device", "symlink", "below a file"])
def test_save_refuses_what_is_not_a_model_folder(trained, tmp_path: Path, kind: str, unchanged) -> None:
    target = {"file": tmp_path / "file.txt", "users folder": tmp_path / "mine", "device": Path("/dev/null"),
              "symlink": tmp_path / "link", "below a file": tmp_path / "file.txt" / "model"}[kind]
    (tmp_path / "file.txt").write_text("mine")
    _users_folder(tmp_path / "mine")
    (tmp_path / "link").symlink_to(tmp_path / "mine", target_is_directory=True)
    check = unchanged(tmp_path)
    with pytest.raises(OutputError) as info:
        trained.save(target)
    assert "\n" not in str(info.value)
    check()


def test_save_without_overwrite_keeps_an_existing_model(trained, model_dir: Path, unchanged) -> None:
    check = unchanged(model_dir.parent)
    with pytest.raises(OutputError, match="already holds a deepmf model"):
        trained.save(model_dir, overwrite=False)
    check()


def test_concurrent_saves_leave_one_complete_model_and_nothing_else(trained, tmp_path: Path) -> None:
    target, errors = tmp_path / "model", []

    def save() -> None:
        try:
            trained.save(target)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert Recommender.load(target).model_name == "mf"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("path", [5, None, "", b"bytes"])
def test_save_and_load_refuse_what_is_not_a_path(trained, path) -> None:
    with pytest.raises(ConfigError, match="model folder must be"):
        trained.save(path)
    with pytest.raises(ConfigError, match="model folder must be"):
        Recommender.load(path)


# ---- reports, plots, tuned configs ---------------------------------------------------------------------------
def test_report_folder_with_a_users_report_md_is_refused(run, ratings_csv: Path, tmp_path: Path,
                                                         unchanged) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "report.md").write_text("# my own report\n")
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("train", ratings_csv, "--report", report, *FAST), "report.md",
                           "not written by deepmf")
    check()


def test_report_folder_with_a_users_png_of_the_same_name_is_refused(run, ratings_csv: Path, tmp_path: Path,
                                                                    unchanged) -> None:
    report = tmp_path / "report"
    report.mkdir()
    (report / "mf_learning_curves.png").write_bytes(b"\x89PNG\r\n\x1a\nmy holiday picture")
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("train", ratings_csv, "--report", report, *FAST), "mf_learning_curves.png")
    check()


def test_report_naming_a_file_is_refused(run, ratings_csv: Path, tmp_path: Path, unchanged) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("train", ratings_csv, "--report", tmp_path / "notes.txt", *FAST), "not a folder")
    check()


def test_plot_out_with_a_users_png_is_refused(run, model_dir: Path, tmp_path: Path, unchanged) -> None:
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "learning_curves.png").write_bytes(b"not deepmf's")
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("plot", model_dir, "--out", plots), "learning_curves.png")
    check()


def test_plot_out_naming_a_file_is_refused(run, model_dir: Path, tmp_path: Path, unchanged) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("plot", model_dir, "--out", tmp_path / "notes.txt"), "notes.txt")
    check()


def test_plot_replaces_its_own_pictures_and_the_model_folder_stays_replaceable(run, ratings_csv: Path,
                                                                                model_dir: Path) -> None:
    assert run("plot", model_dir)[0] == 0
    assert run("plot", model_dir)[0] == 0  # its own PNGs are replaced
    assert run("train", ratings_csv, "--out", model_dir, "--force", *FAST)[0] == 0  # plots/ is deepmf's


def test_tune_out_onto_a_users_config_is_refused(run, ratings_csv: Path, tmp_path: Path, unchanged) -> None:
    config = tmp_path / "best.json"
    config.write_text('{"model": "mf", "model_options": {"factors": 99}}\n')
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("tune", ratings_csv, "--trials", "1", "--threads", "1", "--out", config),
                           "best.json")
    check()


@pytest.mark.parametrize(("out", "inside"), [(".", "."), ("..", "sub")], ids=["current folder", "its parent"])
def test_train_out_that_is_or_holds_the_current_folder_is_refused_before_training(
        run, ratings_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, unchanged, out: str,
        inside: str) -> None:
    # --out . in an empty folder trained, then swapped the folder away: the process (and the shell that
    # started it) was left in a deleted folder where every relative path fails.
    here = tmp_path / "here"
    (here / "sub").mkdir(parents=True)
    monkeypatch.chdir(here / inside)
    check = unchanged(tmp_path)
    assert_one_line_exit_2(run("train", ratings_csv, "--out", out, "--force", *FAST), "is the current folder")
    check()
    assert Path.cwd().exists()


def test_save_into_the_current_folder_is_refused(trained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OutputError, match="is the current folder or holds it"):
        trained.save(".")
    assert Path.cwd() == tmp_path and list(tmp_path.iterdir()) == []
