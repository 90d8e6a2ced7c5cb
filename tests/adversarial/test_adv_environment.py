"""What surrounds a command: empty values, environment variables, config files that are not files.

An empty value (``--report ''``, a shell variable that was never set) would be read as the current folder or as
"not given", so what runs would not be what was typed: it is refused, and the current folder stays as it was.
Environment variables deepmf reads are named in the line when their value is wrong; torchrun's variables set by
hand, without torchrun, are a usage error, not a traceback. A ``--config`` that is a pipe, a device, a folder,
too big or nested too deeply is refused before it is read. Everything runs on the CPU, in-process.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from _checks import FAST, assert_one_line_exit_2

EMPTY = [
    ("train", "{data}", "--report", ""),
    ("train", "{data}", "--tensorboard", ""),
    ("train", "{data}", "--out", ""),
    ("train", "{data}", "--out="),
    ("train", "{data}", "--model", ""),
    ("train", "{data}", "--split", ""),
    ("train", "{data}", "--device", ""),
    ("train", "{data}", "--model", "deepmf", "--features", ""),
    ("plot", "{model}", "--out", ""),
    ("demo", "--out", ""),
    ("info", ""),
    ("recommend", "{model}", "1", "-n", ""),
]


@pytest.mark.parametrize("argv", EMPTY, ids=[" ".join(a).replace("{", "").replace("}", "") or "-" for a in EMPTY])
def test_an_empty_value_is_refused_and_the_current_folder_is_left_alone(
        run, ratings_csv: Path, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        argv: tuple[str, ...]) -> None:
    # Each of these wrote into the current folder (report.md and PNGs, a TensorBoard log, the demo's models)
    # or silently ran the default (mf, random:0.2, no features).
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    filled = [str(ratings_csv) if a == "{data}" else str(model_dir) if a == "{model}" else a for a in argv]
    fast = FAST if argv[0] == "train" else ()
    named = next((a.rstrip("=") for a in reversed(argv) if a.startswith("-")), "DATA")
    assert_one_line_exit_2(run(*filled, *fast), f"{named} is empty")
    assert list(here.iterdir()) == []


def test_an_empty_value_under_json_is_one_json_error(run, ratings_csv: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run("train", ratings_csv, "--report", "", "--json", *FAST)
    assert code == 2 and err == ""
    assert json.loads(out) == {"error": "--report is empty: give it a value, or leave the option out",
                               "exit_code": 2}
    assert list(tmp_path.iterdir()) == []


def test_an_empty_user_id_is_named_as_the_argument(run, model_dir: Path) -> None:
    assert_one_line_exit_2(run("recommend", model_dir, ""), "USER is empty")


@pytest.mark.parametrize(("value", "needle"), [
    ("garbage", "unknown device 'garbage' (from $DEEPMF_DEVICE)"),  # said: unknown device 'auto'
    ("mps", "unsupported device 'mps' (from $DEEPMF_DEVICE)"),
])
def test_a_bad_deepmf_device_is_named(run, ratings_csv: Path, monkeypatch: pytest.MonkeyPatch, value: str,
                                      needle: str) -> None:
    monkeypatch.setenv("DEEPMF_DEVICE", value)
    assert_one_line_exit_2(run("train", ratings_csv, *FAST), needle)


@pytest.mark.parametrize("missing", ["MASTER_ADDR", "MASTER_PORT"])
def test_torchrun_variables_set_by_hand_without_torchrun_are_a_usage_error(
        run, ratings_csv: Path, monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    # WORLD_SIZE=2 without torchrun's rendezvous address was torch's ValueError traceback (exit 1).
    for key, value in {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2",
                       "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv(missing)
    assert_one_line_exit_2(run("train", ratings_csv, "--model", "deepmf", *FAST),
                           f"WORLD_SIZE=2 is set but {missing} is not: start a data-parallel job with torchrun")


def _fifo(folder: Path) -> Path:
    path = folder / "config.json"
    os.mkfifo(path)
    return path


def _nested(folder: Path) -> Path:
    path = folder / "config.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    return path


def _huge(folder: Path) -> Path:
    path = folder / "config.json"
    path.write_text('{"model": "mf", "model_options": {"factors": 3}}' + " " * (2 << 20))
    return path


@pytest.mark.parametrize(("build", "needle"), [
    (_fifo, "not a config file (a folder, pipe or device)"),  # reading it blocked forever
    (lambda folder: Path("/dev/zero"), "not a config file"),  # reading it filled the memory until killed
    (lambda folder: folder, "not a config file"),
    (_nested, "nested too deeply"),  # RecursionError traceback
    (_huge, "too large for a config file"),
], ids=["fifo", "dev-zero", "folder", "nested", "huge"])
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_a_config_that_is_not_a_config_file_is_refused_before_reading_it(
        run, ratings_csv: Path, tmp_path: Path, build, needle: str, command: str) -> None:
    model = ("--model", "mf") if command == "evaluate" else ()
    assert_one_line_exit_2(run(command, ratings_csv, *model, "--config", build(tmp_path), "--threads", "1",
                               "--epochs", "1"), needle)
