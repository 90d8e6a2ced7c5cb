"""MovieLens editions: real ML-100K and ml-latest-small; small files in the ml-1m, ml-10m, ml-20m formats."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from deepmf.data import load
from deepmf.data.movielens import EDITIONS, HALF_STARS, STARS, detect_edition, edition
from deepmf.errors import DataError


def _genres_of(r, raw_item) -> set[str]:
    row = r.item_table.genres[r.item_ids.index(raw_item)]
    return {name for name, flag in zip(r.item_table.genre_names, row, strict=True) if flag}


# ---- real data ----
def test_ml100k(ml100k_dir: Path) -> None:
    r = load(ml100k_dir)
    assert (len(r), r.n_users, r.n_items) == (100_000, 943, 1682)
    assert r.scale == STARS and r.timestamps is not None
    assert r.meta["edition"] == "ml-100k" and r.name == "ml-100k" and Path(r.meta["path"]) == ml100k_dir
    # First line of u.data: "196	242	3	881250949".
    assert (r.user_ids.raw(r.users[0]), r.item_ids.raw(r.items[0]), r.ratings[0], r.timestamps[0]) == (
        196,
        242,
        3.0,
        881250949,
    )
    toy_story = r.item_ids.index(1)
    assert r.item_table.titles[toy_story] == "Toy Story (1995)"
    assert _genres_of(r, 1) == {"Animation", "Children's", "Comedy"}
    assert len(r.item_table.genre_names) == 19 and r.item_table.genre_names[0] == "unknown"
    u1 = r.user_ids.index(1)  # u.user line 1: "1|24|M|technician|85711"
    users = r.user_table
    assert (users.age[u1], users.gender[u1], users.occupation[u1], users.zip_code[u1]) == (
        24,
        "M",
        "technician",
        "85711",
    )


def test_ml_latest_small(latest_small_dir: Path) -> None:
    r = load(latest_small_dir)
    assert (len(r), r.n_users, r.n_items) == (100_836, 610, 9724)  # movies.csv lists 9742; 9724 are rated
    assert r.scale == HALF_STARS and r.user_table is None
    assert r.item_table.titles[r.item_ids.index(1)] == "Toy Story (1995)"
    assert _genres_of(r, 1) == {"Adventure", "Animation", "Children", "Comedy", "Fantasy"}
    assert "(no genres listed)" not in r.item_table.genre_names


def test_edition_name_resolves_in_data_dir(data_root: Path) -> None:
    r = load("ml-100k", data_dir=data_root)
    assert len(r) == 100_000 and r.meta["edition"] == "ml-100k"


# ---- small files in the other editions' formats ----
def test_ml1m_format(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text(
        "1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
    )
    # 3 is listed but never rated (left out of the maps); 661 is rated but not listed (empty title).
    (folder / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n"
        "3::Café au lait (1993)::Comedy|Romance\n".encode("latin-1")
    )
    (folder / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    r = load(folder)
    assert r.meta["edition"] == "ml-1m" and r.scale == STARS
    assert (len(r), r.n_users, r.n_items) == (3, 2, 2)
    assert r.item_table.titles.tolist() == ["", "One Flew Over the Cuckoo's Nest (1975)"]  # items 661, 1193
    assert _genres_of(r, 1193) == {"Drama"} and _genres_of(r, 661) == set()
    assert r.user_table.age.tolist() == [1, 56]  # age-bucket codes as in users.dat
    assert r.user_table.occupation.tolist() == ["K-12 student", "self-employed"]
    assert r.user_table.gender.tolist() == ["F", "M"] and r.user_table.zip_code.tolist() == ["48067", "70072"]


def test_ml1m_latin1_titles(tmp_path: Path) -> None:
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::3::5::978300760\n")
    (folder / "movies.dat").write_bytes("3::Café au lait (1993)::Comedy|Romance\n".encode("latin-1"))
    (folder / "users.dat").write_text("1::F::1::10::48067\n")
    r = load(folder)
    assert r.item_table.titles.tolist() == ["Café au lait (1993)"]
    assert _genres_of(r, 3) == {"Comedy", "Romance"}


def test_ml10m_format(tmp_path: Path) -> None:
    folder = tmp_path / "ml-10M100K"
    folder.mkdir()
    (folder / "ratings.dat").write_text(
        "1::122::5::838985046\n1::185::4.5::838983525\n7::122::0.5::838983392\n"
    )
    (folder / "movies.dat").write_text(
        "122::Boomerang (1992)::Comedy|Romance\n185::Net, The (1995)::Action\n"
    )
    r = load(folder)
    assert r.meta["edition"] == "ml-10m" and r.scale == HALF_STARS and r.user_table is None
    assert r.ratings.tolist() == [5.0, 4.5, 0.5]
    assert r.item_table.titles.tolist() == ["Boomerang (1992)", "Net, The (1995)"]


def test_ml20m_csv_format(tmp_path: Path) -> None:
    folder = tmp_path / "ml-20m"
    folder.mkdir()
    (folder / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n1,2,3.5,1112486027\n1,29,3.5,1112484676\n2,2,4.0,974820889\n"
    )
    (folder / "movies.csv").write_text(
        "movieId,title,genres\n2,Jumanji (1995),Adventure|Children|Fantasy\n"
        '29,"City of Lost Children, The (1995)",(no genres listed)\n'
    )
    r = load(folder)
    assert r.meta["edition"] == "ml-20m" and (len(r), r.n_users, r.n_items) == (3, 2, 2)
    assert r.item_table.titles.tolist() == ["Jumanji (1995)", "City of Lost Children, The (1995)"]
    assert _genres_of(r, 29) == set() and r.item_table.first_genre.tolist()[1] == -1
    assert r.item_table.genre_names == ("Adventure", "Children", "Fantasy")


def test_detect_edition_by_layout(tmp_path: Path) -> None:
    folder = tmp_path / "my-export"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating\n1,2,3\n")
    assert detect_edition(folder) == "movielens-csv"
    r = load(folder)
    assert r.item_table is None and r.timestamps is None and r.meta["edition"] == "movielens-csv"


def test_malformed_dat_line_names_file_and_line(tmp_path: Path) -> None:
    folder = tmp_path / "ml-10M100K"
    folder.mkdir()
    (folder / "ratings.dat").write_text("1::122::5::838985046\n1::185::838983525\n")
    with pytest.raises(DataError, match=r"ratings\.dat:2: expected 4 fields, found 3"):
        load(folder)


def test_out_of_scale_rating_in_an_edition(tmp_path: Path) -> None:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("1\t1\t3\t5\n1\t2\t6\t5\n")
    with pytest.raises(DataError, match=r"u\.data:2: rating 6 is outside the scale 1\.\.5"):
        load(folder)


def test_missing_ratings_column_in_csv_edition(tmp_path: Path) -> None:
    folder = tmp_path / "ml-25m"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,stars\n1,2,3\n")
    with pytest.raises(DataError, match=r"missing column\(s\) rating"):
        load(folder)


# ---- registry ----
def test_registry() -> None:
    assert set(EDITIONS) == {
        "ml-100k",
        "ml-1m",
        "ml-10m",
        "ml-20m",
        "ml-25m",
        "ml-32m",
        "ml-latest-small",
        "ml-latest",
    }
    for ed in EDITIONS.values():
        assert ed.url == f"https://files.grouplens.org/datasets/movielens/{ed.name}.zip"
        assert ed.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", ed.sha256)
        assert ed.md5 is None or re.fullmatch(r"[0-9a-f]{32}", ed.md5)
        assert (ed.sha256 or ed.md5) is None or ed.checksum_source
    assert EDITIONS["ml-10m"].folder == "ml-10M100K"
    with pytest.raises(DataError, match="unknown MovieLens edition 'ml-5m'"):
        edition("ml-5m")
    assert np.isclose(EDITIONS["ml-10m"].scale.step, 0.5)
