"""The README shows only what the program does: its examples are rerun here and their shown outputs checked.

Runs on real ML-100K (``DEEPMF_DATA``), CPU. The checks read the README itself, so an edited figure that the
program does not produce fails here:

- "What it answers": the three commands (train, recommend, similar; with ``--threads 2``, the core count the
  table was made with) against the comment on the train line and every row of the table; the
  ``--min-ratings 50`` sentence;
- the command-line block's ``deepmf info`` comment, and the keys ``train --json`` is said to have;
- every ``deepmf`` command line of the README names only flags that exist;
- the Python API block, executed line by line: a comment of the form ``Name(key=value, ...)`` or holding
  ``key=value`` pairs is compared with the line's result (numbers at the precision shown), ``DataFrame: a, b``
  with its columns, a list of words with the keys of the dict it returns.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _text() -> str:
    return README.read_text(encoding="utf-8")


def _section(title: str) -> str:
    text = _text()
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start:end if end >= 0 else None]


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _command(block: str, start: str) -> tuple[list[str], str]:
    """(argv after ``deepmf``, comment) of the block's line starting with ``start``."""
    line = next(line for line in block.splitlines() if line.startswith(start))
    command, _, comment = line.partition("#")
    return _split(command)[1:], comment.strip()


def _split(command: str) -> list[str]:
    import shlex

    return shlex.split(command)


def _close(actual: Any, shown: str) -> bool:
    """``actual`` equals the shown value at the shown precision (strings and None exactly)."""
    try:
        value = ast.literal_eval(shown)
    except (ValueError, SyntaxError):
        return str(actual) == shown
    if isinstance(value, float):
        decimals = len(shown.partition(".")[2])
        return abs(float(actual) - value) <= 0.5 * 10**-decimals + 1e-12
    return actual == value


def _run_json(argv: list[str]) -> dict[str, Any]:
    """Run ``deepmf ARGV`` in-process; its one JSON object."""
    import contextlib
    import io
    import sys

    from deepmf.cli.app import _register, app
    from deepmf.cli.common import run_app

    _register()
    saved, sys.argv = sys.argv, ["deepmf", *argv]
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            assert run_app(app) == 0, argv
    finally:
        sys.argv = saved
    return json.loads(buffer.getvalue())


@pytest.fixture(scope="module")
def answers(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The three "What it answers" commands run as the README shows them (plus --json, --threads 2)."""
    import os

    block = _blocks(_section("## What it answers"), "bash")[0]
    previous, previous_data = Path.cwd(), os.environ.get("DEEPMF_DATA")
    os.environ["DEEPMF_DATA"] = str(data_root.resolve())  # CI's is relative (../shared/data) to the checkout
    os.chdir(tmp_path_factory.mktemp("readme"))  # the commands write runs/mf relative to where they run
    try:
        outputs: dict[str, Any] = {}
        for name in ("train", "recommend", "similar"):
            argv, comment = _command(block, f"deepmf {name}")
            extra = ["--threads", "2", "--quiet"] if name == "train" else []
            outputs[name] = (_run_json([*argv, *extra, "--json"]), comment)
        outputs["min_ratings"] = _run_json(["recommend", "runs/mf", "1", "-n", "3", "--min-ratings", "50",
                                            "--json"])
    finally:
        os.chdir(previous)
        if previous_data is None:
            os.environ.pop("DEEPMF_DATA", None)
        else:
            os.environ["DEEPMF_DATA"] = previous_data
    return outputs


def test_train_comment(answers) -> None:
    summary, comment = answers["train"]
    # The "< 1 s" is not timed here (tests never time things: the machine's load decides); BENCHMARKS.md has it.
    rmse, engine, epochs = re.match(r"test RMSE ([\d.]+), (\w+) engine, (\d+) epochs", comment).groups()
    assert _close(summary["test"]["rmse"], rmse)
    assert summary["engine"] == engine and summary["epochs_run"] == int(epochs)


def test_answer_table(answers) -> None:
    section = _section("## What it answers")
    rows = [line.strip("|").split("|") for line in section.splitlines() if re.match(r"\| \d+ \|", line)]
    top, similar = answers["recommend"][0]["items"], answers["similar"][0]["similar"]
    assert len(rows) == len(top) == len(similar) == 10
    for row, mine, near in zip(rows, top, similar, strict=True):
        rank, title, score, _, near_title, cosine = (cell.strip() for cell in row)
        assert (title, near_title) == (mine["title"], near["title"]), rank
        assert _close(mine["score"], score) and _close(near["score"], cosine), rank


def test_min_ratings_sentence(answers) -> None:
    sentence = re.search(r"user 1's list then\s+starts with (.*?)\. ", _section("## What it answers"), re.S).group(1)
    shown = [re.sub(r"\s+", " ", name.strip()) for name in re.split(r",| and ", sentence) if name.strip()]
    titles = [item["title"] for item in answers["min_ratings"]["items"]]
    # "A Close Shave" is ML-100K's "Close Shave, A (1995)": compare the words, not the article order.
    for name, title in zip(shown, titles, strict=True):
        words = set(name.lower().split()) - {"a", "the"}
        assert words <= set(re.sub(r"[(),]", " ", title.lower()).split()), (name, title)


def test_train_json_has_the_keys_the_readme_lists(answers) -> None:
    sentence = re.search(r"`train --json` has (.*?)\);", _text(), re.S).group(1)
    keys = re.findall(r"`(\w+)`", sentence)
    assert len(keys) >= 10 and set(keys) <= set(answers["train"][0])


def test_info_comment(data_root: Path, run) -> None:
    block = _blocks(_section("## The command line"), "bash")[0]
    argv, comment = _command(block, "deepmf info")
    code, out, _ = run(*argv, "--dir", data_root, "--json")
    summary = json.loads(out)
    ratings, users, items, low, high = re.match(r"(\d+) ratings, (\d+) users, (\d+) items, scale (\d)\.\.(\d)",
                                                comment).groups()
    assert code == 0
    assert (summary["n_ratings"], summary["n_users"], summary["n_items"]) == (int(ratings), int(users), int(items))
    assert (summary["scale"]["min"], summary["scale"]["max"]) == (float(low), float(high))


def _command_lines() -> list[str]:
    """Every ``deepmf ...`` line of the README's bash blocks (and torchrun's ``-m deepmf ...``), without comments."""
    lines = []
    for block in _blocks(_text(), "bash"):
        for line in block.splitlines():
            command = line.partition("  #")[0].strip()
            if command.startswith("deepmf "):
                lines.append(command)
            elif command.startswith("torchrun ") and "-m deepmf " in command:
                lines.append(command[command.index("-m deepmf ") + 3:])
    return lines


@pytest.mark.parametrize("line", _command_lines(), ids=lambda line: " ".join(line.split()[:3]))
def test_every_command_line_uses_flags_that_exist(line: str, run) -> None:
    """Each README command line parses: with --help appended, click checks every flag's name and stops."""
    argv = _split(line)
    assert argv[0] == "deepmf"
    code, out, err = run(*argv[1:], "--help")
    assert code == 0 and "Usage" in out, err


@pytest.mark.slow
def test_python_api_block(data_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every line of the README's Python block runs, and every output it shows in a comment is what it gives.

    Assumes the CPU this README was written on (bfloat16 forward pass where the CPU has it natively, one torch
    thread): deep MF's single prediction may differ in the second decimal elsewhere."""
    monkeypatch.setenv("DEEPMF_DATA", str(data_root.resolve()))  # before leaving the checkout: it may be relative
    monkeypatch.chdir(tmp_path)
    block = _blocks(_section("## The Python API"), "python")[0]
    namespace: dict[str, Any] = {}
    checked = 0
    for line in block.splitlines():
        code, _, comment = line.partition("  #")
        if not code.strip():
            continue
        tree = ast.parse(code.strip())
        if isinstance(tree.body[-1], ast.Expr) and len(tree.body) == 1:
            result = eval(compile(ast.Expression(tree.body[0].value), "README", "eval"), namespace)
            checked += _check(result, comment.strip())
        else:
            exec(compile(tree, "README", "exec"), namespace)
    assert checked >= 4


def _check(result: Any, comment: str) -> int:
    """Compare ``result`` with what the README's comment says it is; return 1 if the comment made a claim."""
    import pandas as pd

    if match := re.fullmatch(r"(\w+)\((.*)\)", comment):
        assert type(result).__name__ == match.group(1)
        pairs = re.findall(r"(\w+)=([^,]+)", match.group(2))
    elif comment.startswith("DataFrame:"):
        columns = [c.strip() for c in comment.removeprefix("DataFrame:").split(",")]
        assert isinstance(result, pd.DataFrame) and list(result.columns) == columns
        return 1
    else:
        pairs = re.findall(r"(\w+)=('[^']*'|[\w.]+)", comment)
        words = [w.strip() for w in comment.split(",")]
        if not pairs and isinstance(result, dict) and all(re.fullmatch(r"\w+", w) for w in words):
            assert set(words) <= set(result), words
            return 1
    for key, shown in pairs:
        assert _close(getattr(result, key), shown.strip()), (key, getattr(result, key), shown)
    return int(bool(pairs))
