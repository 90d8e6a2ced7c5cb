"""The user's own rating files: separators, headers, column flags, encodings, and every bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepmf.data import load
from deepmf.data.files import read_user_file, sniff_separator
from deepmf.data.ratings import RatingScale
from deepmf.errors import ConfigError, DataError


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_csv_with_header_aliases_and_string_ids(tmp_path: Path) -> None:
    path = _write(
        tmp_path, "r.csv", "userId,movieId,rating,timestamp\nann,m1,4,100\nbob,m1,2.5,50\nann,m2,5,75\n"
    )
    r = load(path)
    assert (len(r), r.n_users, r.n_items) == (3, 2, 2)
    assert r.user_ids.kind == "str" and r.user_ids.to_list() == ["ann", "bob"]
    assert r.ratings.tolist() == [4.0, 2.5, 5.0] and r.timestamps.tolist() == [100, 50, 75]
    assert r.name == "r.csv" and r.meta["edition"] is None and r.meta["path"] == str(path)
    assert r.scale == RatingScale(2.5, 5.0, 0.5)


def test_headerless_tsv_is_sniffed_and_positional(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.tsv", "1\t10\t3\t881250949\n2\t10\t4\t881250950\n")
    assert sniff_separator(path) == "\t"
    r = load(path)
    assert r.user_ids.to_list() == [1, 2] and r.item_ids.to_list() == [10]
    assert r.timestamps.tolist() == [881250949, 881250950]


def test_column_flags_pick_named_columns(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.txt", "stars;who;what;extra\n5;u1;i1;x\n3;u2;i1;y\n")
    r = load(path, user_col="who", item_col="what", rating_col="stars")
    assert r.ratings.tolist() == [5.0, 3.0] and r.user_ids.to_list() == ["u1", "u2"] and r.timestamps is None
    with pytest.raises(DataError, match=r"no column 'nope' \(the user column\); columns are: 'stars', 'who'"):
        load(path, user_col="nope", item_col="what", rating_col="stars")


def test_positional_flags_for_headerless_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.csv", "10,1,4\n11,2,5\n")
    r = load(path, user_col="1", item_col="0", rating_col="2")
    assert r.user_ids.to_list() == [1, 2] and r.item_ids.to_list() == [10, 11]


def test_bom_crlf_and_trailing_empty_columns(tmp_path: Path) -> None:
    with_header = _write(tmp_path, "a.csv", b"\xef\xbb\xbfuser,item,rating,\r\n1,2,3,\r\n1,3,4,\r\n")
    headerless = _write(tmp_path, "b.csv", b"\xef\xbb\xbf1,2,3,\r\n1,3,4,\r\n")
    for path in (with_header, headerless):
        r = load(path)
        assert r.ratings.tolist() == [3.0, 4.0] and r.item_ids.to_list() == [2, 3] and r.timestamps is None


def test_parquet(tmp_path: Path) -> None:
    path = tmp_path / "r.parquet"
    pd.DataFrame({"user_id": [5, 6], "item_id": ["a", "b"], "rating": [1.0, 2.0]}).to_parquet(path)
    r = load(path)
    assert r.user_ids.to_list() == [5, 6] and r.item_ids.to_list() == ["a", "b"]


def test_date_timestamps(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.csv", "user,item,rating,date\n1,1,3,2020-01-01\n1,2,4,2020-01-02 00:00:10\n")
    r = load(path)
    assert r.timestamps.tolist() == [1577836800, 1577836800 + 86400 + 10]


def test_latin1_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.csv", "user;item;rating\nJosé;Café;4\n".encode("latin-1"))
    raw = read_user_file(path, encoding="latin-1")
    assert raw.users.tolist() == ["José"] and raw.items.tolist() == ["Café"]
    # Not valid UTF-8: an error naming the line (never ids decoded as something else in silence) ...
    with pytest.raises(DataError, match=r"r\.csv:2: user id b'Jos\\xe9' is not valid UTF-8 text; .*--encoding latin-1"):
        load(path)
    r = load(path, encoding="latin-1")  # ... until the encoding is said
    assert r.user_ids.to_list() == ["José"] and r.item_ids.to_list() == ["Café"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("user,item,rating\n1,1,4\n1,2,nan\n", r"r\.csv:3: missing rating \(empty or NaN\)"),
        ("user,item,rating\n1,1,4\n1,2,\n", r"r\.csv:3: missing rating"),
        ("user,item,rating\n1,1,4\n1,2,inf\n", r"r\.csv:3: infinite rating"),
        ("user,item,rating\n1,1,4\n\n1,2,good\n", r"r\.csv:4: rating 'good' is not a number"),
        ("user,item,rating\n1,1,4\n1,2\n", r"r\.csv:3: expected 3 fields, found 2"),
        ("user,item,rating\n1,1,4\n,2,3\n", r"r\.csv:3: empty user id"),
        ("user,item,rating\n", r"r\.csv: no ratings"),
        ("", r"r\.csv: empty file"),
        ("a,b,c\n1,1,4\n", r"cannot tell which column is the user/item/rating .*--user-col"),
        ("user,item,rating,timestamp\n1,1,4,yesterday-ish\n", r"r\.csv:2: timestamp 'yesterday-ish'"),
    ],
)
def test_bad_files_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, "r.csv", text)
    with pytest.raises(DataError, match=message):
        load(path)


def test_line_numbers_survive_blank_lines_in_large_files(tmp_path: Path) -> None:
    lines = ["user,item,rating"] + [f"{k},{k},3" for k in range(50_000)]
    lines.insert(10, "")  # a blank line shifts every later line number by one
    lines.append("7,x7,9")
    path = _write(tmp_path, "big.csv", "\n".join(lines) + "\n")
    with pytest.raises(DataError, match=r"big\.csv:50003: rating 9 is outside the scale 1\.\.5"):
        load(path, scale=RatingScale(1, 5, 1))


def test_declared_scale_refuses_off_scale_and_off_step(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.csv", "user,item,rating\n1,1,4\n1,2,3.5\n")
    with pytest.raises(DataError, match=r"r\.csv:3: rating 3\.5 is not a multiple of the scale step 1"):
        load(path, scale=RatingScale(1, 5, 1))
    assert load(path, scale=RatingScale(0.5, 5, 0.5)).scale.step == 0.5


def test_duplicates_policies(tmp_path: Path) -> None:
    path = _write(tmp_path, "r.csv", "user,item,rating,ts\n1,1,4,10\n2,1,1,11\n1,1,2,30\n1,1,3,20\n")
    with pytest.raises(
        DataError, match=r"r\.csv:4: duplicate rating of user 1 for item 1 \(first at line 2\)"
    ):
        load(path, time_col="ts")
    last = load(path, time_col="ts", duplicates="last")
    assert len(last) == 2
    assert sorted(zip(last.users.tolist(), last.ratings.tolist(), last.timestamps.tolist(), strict=True)) == [
        (0, 3.0, 20),
        (1, 1.0, 11),
    ]
    mean = load(path, time_col="ts", duplicates="mean")
    assert mean.ratings.tolist() == [3.0, 1.0] and mean.timestamps.tolist() == [30, 11]
    with pytest.raises(ConfigError, match="duplicates policy"):
        load(path, duplicates="first")


def test_load_dispatch_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown data set 'ml-2k'"):
        load("ml-2k", data_dir=tmp_path)
    with pytest.raises(DataError, match=r"ml-1m not found in .*deepmf download ml-1m"):
        load("ml-1m", data_dir=tmp_path)
    with pytest.raises(DataError, match="no such file or folder"):
        load(tmp_path / "missing.csv")
    with pytest.raises(DataError, match="not a MovieLens folder"):
        load(tmp_path)
    (tmp_path / "ml-100k").mkdir()
    (tmp_path / "ml-100k" / "u.data").write_text("1\t1\t3\t5\n")
    with pytest.raises(ConfigError, match="--user-col apply to your own ratings files"):
        load("ml-100k", data_dir=tmp_path, user_col="x")
    assert np.array_equal(load("ml-100k", data_dir=tmp_path).ratings, [3.0])
