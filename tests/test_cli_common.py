"""What every command shares (CPU only): --version, version --json, -v logging, errors as JSON under --json, and
the exit codes the README lists."""

from __future__ import annotations

import json

import pytest

from deepmf import __version__
from deepmf.cli.common import EXIT_CODES


def test_version_flag_and_command(run) -> None:
    code, out, _ = run("--version")
    assert (code, out.strip()) == (0, f"deepmf {__version__}")
    code, out, _ = run("version", "--json")
    payload = json.loads(out)
    assert code == 0 and payload["deepmf"] == __version__ and {"python", "torch", "numpy"} <= set(payload)


@pytest.mark.parametrize("argv, message", [
    (("info", "no-such-edition", "--json"), "unknown data set 'no-such-edition'"),
    (("train", "ml-100k", "--no-such-flag", "--json"), "No such option: --no-such-flag"),
    (("train", "--json"), "Missing argument"),
])
def test_an_error_under_json_is_one_json_object_on_stdout(run, argv, message) -> None:
    code, out, err = run(*argv)
    payload = json.loads(out)  # the whole of stdout is one JSON object
    assert code == 2 and payload["exit_code"] == 2 and message in payload["error"]
    assert "Traceback" not in err


def test_an_error_without_json_is_one_line_on_stderr(run) -> None:
    code, out, err = run("info", "no-such-edition")
    assert code == 2 and out == "" and err.startswith("error: unknown data set") and err.count("\n") == 1


def test_an_unexpected_error_under_json_is_exit_code_1(run, monkeypatch, tmp_path) -> None:
    import deepmf.data.describe
    from deepmf.testing.conformance import conformance_data

    def broken(_ratings):
        raise RuntimeError("boom")

    source = tmp_path / "ratings.csv"
    conformance_data().to_frame().to_csv(source, index=False)
    monkeypatch.setattr(deepmf.data.describe, "describe", broken)
    code, out, err = run("info", source, "--json")
    assert code == 1 and json.loads(out) == {"error": "internal error: RuntimeError: boom", "exit_code": 1}
    assert "Traceback" in err


def test_verbose_logs_what_training_does(run, tmp_path) -> None:
    from deepmf.testing.conformance import conformance_data

    source = tmp_path / "ratings.csv"
    conformance_data().to_frame().to_csv(source, index=False)
    code, _, err = run("-v", "train", source, "--epochs", "1", "--quiet", "--json")
    assert code == 0 and "info: mf:" in err and "engine numba" in err
    code, _, err = run("train", source, "--epochs", "1", "--quiet", "--json")
    assert code == 0 and "info:" not in err


def test_exit_codes_are_documented() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for code in EXIT_CODES:
        assert f"| {code} |" in readme


@pytest.mark.parametrize("as_json", [False, True])
def test_ctrl_c_says_interrupted_and_exits_130(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                                               as_json: bool) -> None:
    # typer turns KeyboardInterrupt into a silent Exit(130): a Ctrl-C'd run printed nothing at all.
    import sys

    import typer

    from deepmf.cli.common import run_app

    app = typer.Typer()

    @app.command()
    def job(json: bool = False) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(sys, "argv", ["deepmf", *(["--json"] if as_json else [])])
    assert run_app(app) == 130
    out, err = capsys.readouterr()
    if as_json:
        assert json.loads(out) == {"error": "interrupted", "exit_code": 130} and err == ""
    else:
        assert (out, err.strip()) == ("", "interrupted")
