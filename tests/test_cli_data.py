"""``deepmf datasets``, ``info``, ``download`` through the console entry point: JSON keys, tables, exit 2."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import pytest

from deepmf.data.movielens import EDITIONS


def test_info_acceptance_counts(run, data_root: Path) -> None:
    for name, counts in {"ml-100k": (100_000, 943, 1682), "ml-latest-small": (100_836, 610, 9724)}.items():
        code, out, _ = run("info", name, "--dir", data_root, "--json")
        assert code == 0
        payload = json.loads(out)
        assert (payload["n_ratings"], payload["n_users"], payload["n_items"]) == counts
        assert payload["edition"] == name
    assert payload["rating_min"] == 0.5 and payload["rating_max"] == 5.0 and payload["rating_step"] == 0.5
    assert payload["density"] == pytest.approx(100_836 / (610 * 9724))
    assert payload["date_first"] <= payload["date_last"] and payload["side_tables"]["genres"] == 19


def test_info_table_for_a_user_file_with_flags(run, tmp_path: Path) -> None:
    path = tmp_path / "mine.tsv"
    path.write_text("who\twhat\tstars\twhen\nann\tx\t4\t0\nbob\tx\t2\t86400\nbob\tx\t3\t90000\n")
    columns = ("--user-col", "who", "--item-col", "what", "--rating-col", "stars", "--duplicates", "mean")
    code, out, err = run("info", path, *columns, "--time-col", "when")
    assert code == 0, err
    assert "(your file)" in out and "1970-01-01 .. 1970-01-02" in out
    code, out, _ = run("info", path, *columns, "--json")
    payload = json.loads(out)
    assert (payload["n_ratings"], payload["rating_mean"]) == (2, 3.25)  # bob's 2 and 3 averaged to 2.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("info", "ml-9m"), "unknown data set 'ml-9m'"),
        (("info", "{bad}"), r"bad\.csv:3: rating 'x' is not a number"),
        (("info", "{bad}", "--duplicates", "first"), "unknown duplicates policy 'first'"),
        (("download", "ml-9m"), "unknown MovieLens edition 'ml-9m'"),
    ],
)
def test_errors_are_one_line_with_exit_2(run, tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("user,item,rating\n1,1,4\n1,2,x\n")
    code, out, err = run(*(a.replace("{bad}", str(bad)) for a in args), "--dir", tmp_path)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert re.search(message, err)


@pytest.mark.parametrize("command", [("info",), ("train",), ("tune",), ("evaluate", "--model", "mf"),
                                     ("compare", "--models", "mf")])
def test_every_data_command_passes_the_loader_flags_on(run, data_root: Path, tmp_path: Path,
                                                      command: tuple[str, ...]) -> None:
    # Each loader flag changes the loader's answer, so a flag the command dropped would show here.
    code, _, err = run(*command, "ml-100k", "--dir", tmp_path)
    assert code == 2 and f"ml-100k not found in {tmp_path}" in err
    code, _, err = run(*command, "ml-100k", "--dir", data_root, "--duplicates", "first")
    assert code == 2 and "unknown duplicates policy 'first'" in err
    code, _, err = run(*command, "ml-100k", "--dir", data_root, "--positive", "4")
    assert code == 2 and "--positive selects implicit positives: add --feedback implicit" in err
    code, _, err = run(*command, "ml-100k", "--dir", data_root, "--feedback", "clicks")
    assert code == 2 and "unknown feedback 'clicks'" in err
    columns = ("--user-col", "u", "--item-col", "i", "--rating-col", "r", "--time-col", "t", "--sep", ",")
    code, _, err = run(*command, data_root / "ml-100k", *columns)
    assert code == 2 and "--user-col, --item-col, --rating-col, --time-col, --sep apply to your own" in err


def test_datasets_lists_every_edition(run, data_root: Path) -> None:
    code, out, _ = run("datasets", "--dir", data_root, "--json")
    assert code == 0
    payload = json.loads(out)
    rows = {row["name"]: row for row in payload["datasets"]}
    assert list(rows) == list(EDITIONS)
    assert rows["ml-100k"]["present"] and not rows["ml-1m"]["present"]
    assert rows["ml-10m"]["url"].endswith("/ml-10m.zip") and rows["ml-100k"]["n_ratings"] == 100_000
    code, out, _ = run("datasets", "--dir", data_root)
    assert code == 0 and "ml-latest-small" in out and "1,682" in out


def test_download_command_json(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The archive comes from a local folder through a file:// base URL: no network involved.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ml-100k/u.data", "1\t1\t5\t0\n")
    body = buffer.getvalue()
    (tmp_path / "mirror").mkdir()
    (tmp_path / "mirror" / "ml-100k.zip").write_bytes(body)
    monkeypatch.setitem(
        EDITIONS,
        "ml-100k",
        dataclasses.replace(EDITIONS["ml-100k"], sha256=hashlib.sha256(body).hexdigest(), size=len(body)),
    )
    monkeypatch.setenv("DEEPMF_DOWNLOAD_URL", (tmp_path / "mirror").as_uri())
    code, out, err = run("download", "ml-100k", "--dir", tmp_path / "data", "--json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["verified"] == "sha256" and payload["bytes"] == len(body) and not payload["already_present"]
    code, out, _ = run("download", "ml-100k", "--dir", tmp_path / "data")
    assert code == 0 and "already" in out
