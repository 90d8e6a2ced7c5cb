"""User text is printed literally: titles, ids and file names that look like rich markup ("[bold]x[/bold]",
"[x]") or emoji codes (":100:") reach the terminal as written, in tables, titles and error lines. CPU only."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import deepmf

# Titles that rich would otherwise restyle, drop or turn into emoji.
TITLES = ["[bold]x[/bold]", ":100: Percent (1999)", "[x]", "Amélie [2001] :smile:", "[red]Alarm[/red] :fire:",
          "Plain Film (1995)"]


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MovieLens-CSV folder whose six titles are markup-like, every user rating every film."""
    folder = tmp_path_factory.mktemp("literal") / "films"
    folder.mkdir()
    ratings = ["userId,movieId,rating,timestamp"] + [
        f"{user},{item + 1},{(user * 7 + item * 3) % 5 + 1},{964982703 + user}"
        for user in range(1, 31) for item in range(len(TITLES)) if (user + item) % 4
    ]
    (folder / "ratings.csv").write_text("\n".join(ratings) + "\n")
    movies = ["movieId,title,genres"] + [f'{k + 1},"{title}",Drama' for k, title in enumerate(TITLES)]
    (folder / "movies.csv").write_text("\n".join(movies) + "\n")
    return folder


@pytest.fixture(scope="module")
def model_dir(films: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    rec = deepmf.fit(deepmf.load(films), model="mf", epochs=3, seed=0)
    return rec.save(tmp_path_factory.mktemp("model") / "m")


def test_titles_print_literally_in_a_top_n_table(run, model_dir: Path) -> None:
    code, out, err = run("recommend", model_dir, "1", "-n", "6", "--include-seen")
    assert code == 0, err
    for title in TITLES:
        assert title in out, (title, out)
    assert "💯" not in out and "😄" not in out and "🔥" not in out


def test_titles_print_literally_as_table_titles_and_lines(run, model_dir: Path) -> None:
    code, out, err = run("similar", model_dir, "[x]", "-n", "3")
    assert code == 0, err
    assert "Most similar to 3 [x] (cosine" in out
    code, out, err = run("predict", model_dir, "1", "2")
    assert code == 0, err
    assert "item 2 (:100: Percent (1999)): predicted rating" in out and "💯" not in out
    code, out, err = run("rated", model_dir, "1")
    assert code == 0 and "[bold]x[/bold]" in out


def test_json_keeps_titles_as_written(run, model_dir: Path) -> None:
    code, out, _ = run("recommend", model_dir, "1", "-n", "6", "--include-seen", "--json")
    assert code == 0
    assert sorted(row["title"] for row in json.loads(out)["items"]) == sorted(TITLES)


def test_ids_that_look_like_markup_print_literally(run, tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    rows = [f"{user},{item},{(len(user) + item) % 5 + 1}" for user in ("[red]ann", ":100:", "bob[/]", "eve")
            for item in range(1, 9)]
    path.write_text("user,item,rating\n" + "\n".join(rows) + "\n")
    out_dir = tmp_path / "m"
    code, _, err = run("train", path, "--epochs", "2", "--out", out_dir, "--quiet")
    assert code == 0, err
    for user in ("[red]ann", ":100:", "bob[/]"):
        code, out, err = run("recommend", out_dir, user, "-n", "3", "--include-seen")
        assert code == 0, err
        assert f"Top 3 for user {user} (mf)" in out


@pytest.mark.parametrize("name", [":100: [bold]x[red].csv", "[x].csv", "u.data:100:"])
def test_file_names_in_error_lines_print_literally(run, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("user,item,rating\n1,1,3\n1,2,x\n")
    code, out, err = run("info", path)
    assert code == 2 and out == ""
    assert err == f"error: {path}:3: rating 'x' is not a number\n"


def test_the_issue_example_keeps_its_line_number(run, tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    lines = [f"{k % 29 + 1}\t{k // 29 + 1}\t{k % 5 + 1}\t881250949" for k in range(120)]
    lines[99] = "1\t99\t7\t881250949"
    (folder / "u.data").write_text("\n".join(lines) + "\n")
    code, _, err = run("info", folder)
    assert code == 2
    assert re.fullmatch(r"error: .*/u\.data:100: rating 7 is outside the scale 1\.\.5\n", err), err
    assert "💯" not in err
