"""Top-N for every user to Parquet/CSV (chunked, atomic, replacing only its own earlier file), `recommend
--all-users` and `recommend --new-user` on the command line, and the item,rating file reader (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import deepmf
from deepmf.data.newuser import read_item_ratings
from deepmf.data.ratings import ItemTable, Ratings
from deepmf.errors import ConfigError, DataError, OutputError
from deepmf.export import export_recommendations
from deepmf.recommender import base


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory):
    rng = np.random.default_rng(3)
    users, items = np.nonzero(rng.random((50, 30)) < 0.4)
    frame = pd.DataFrame({"user": users + 1, "item": items + 101,
                          "rating": rng.integers(1, 6, len(users)).astype(np.float32)})
    data = Ratings.from_frame(frame, name="tiny")
    titles = np.array([f'Film "{i}", part {i % 3}' for i in range(data.n_items)], dtype=object)
    data = Ratings(data.users, data.items, data.ratings, data.user_ids, data.item_ids, data.scale,
                   item_table=ItemTable(titles, None, ()), name="tiny")
    rec = deepmf.fit(data, model="mf", factors=3, epochs=5, seed=0, valid_fraction=0)
    return rec, rec.save(tmp_path_factory.mktemp("export") / "model")


def _expected(rec, n: int, min_ratings: int = 1) -> pd.DataFrame:
    return rec.recommend_many(rec.user_ids.raw(np.arange(rec.n_users)), n=n, min_ratings=min_ratings)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_every_users_top_n_matches_recommend_many(saved, tmp_path: Path, suffix: str, monkeypatch) -> None:
    rec, _ = saved
    monkeypatch.setattr(base, "ALL_USERS_CELLS", 7 * rec.n_items)  # 7 users per chunk: several chunks
    monkeypatch.setattr(base, "MATMUL_CELLS", 7 * rec.n_items)
    path = tmp_path / f"recs{suffix}"
    summary = export_recommendations(rec, path, n=4)
    written = pq.read_table(path).to_pandas() if suffix == ".parquet" else pd.read_csv(path)
    expected = _expected(rec, 4)
    assert list(written.columns) == ["user", "rank", "item", "title", "score"]
    assert written[["user", "rank", "item", "title"]].equals(expected[["user", "rank", "item", "title"]].astype(
        written[["user", "rank", "item", "title"]].dtypes.to_dict()))
    np.testing.assert_allclose(written["score"], expected["score"], rtol=1e-6)
    assert summary.users == rec.n_users and summary.rows == len(expected)
    seen = {(rec.user_ids.raw(u), rec.item_ids.raw(int(i))) for u in range(rec.n_users)
            for i in rec.seen.items[rec.seen.indptr[u]:rec.seen.indptr[u + 1]]}
    assert not seen & set(zip(written["user"], written["item"], strict=True))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_min_ratings_applies(saved, tmp_path: Path) -> None:
    rec, _ = saved
    threshold = int(np.median(rec.seen.item_counts())) + 1
    export_recommendations(rec, tmp_path / "recs.parquet", n=3, min_ratings=threshold)
    items = pq.read_table(tmp_path / "recs.parquet").column("item").to_pylist()
    counts = rec.seen.item_counts()
    assert all(counts[rec.item_ids.index(item)] >= threshold for item in items)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_only_its_own_earlier_file_is_replaced(saved, tmp_path: Path, suffix: str) -> None:
    rec, _ = saved
    path = tmp_path / f"recs{suffix}"
    export_recommendations(rec, path, n=3)
    export_recommendations(rec, path, n=2)  # its own: replaced
    frame = pq.read_table(path).to_pandas() if suffix == ".parquet" else pd.read_csv(path)
    assert frame["rank"].max() == 2
    mine = tmp_path / f"mine{suffix}"
    if suffix == ".csv":
        mine.write_text("user,rank,item,title,score\n1,1,2,x,3.5\n")  # the same columns, but not deepmf's
    else:
        pd.DataFrame({"user": [1]}).to_parquet(mine)
    before = mine.read_bytes()
    with pytest.raises(OutputError, match="was not written by deepmf"):
        export_recommendations(rec, mine)
    assert mine.read_bytes() == before
    with pytest.raises(OutputError, match="not a regular file"):
        export_recommendations(rec, tmp_path)
    with pytest.raises(ConfigError, match="n must be a positive"):
        export_recommendations(rec, tmp_path / "new.csv", n=0)
    assert not (tmp_path / "new.csv").exists()


def test_the_vectors_export_and_the_recommendations_replace_each_other(saved, tmp_path: Path) -> None:
    from deepmf.export import export_vectors

    rec, _ = saved
    path = tmp_path / "out.parquet"
    export_recommendations(rec, path, n=2)
    export_vectors(rec, path)  # both are deepmf's own files
    export_recommendations(rec, path, n=2)
    assert list(pq.read_table(path).column_names) == ["user", "rank", "item", "title", "score"]


def test_a_huge_n_is_clamped_to_the_catalogue(saved, tmp_path: Path) -> None:
    rec, _ = saved
    summary = export_recommendations(rec, tmp_path / "recs.parquet", n=10_000_000_000)
    assert summary.rows == len(_expected(rec, rec.n_items))


def test_an_interrupted_write_leaves_the_old_file(saved, tmp_path: Path, monkeypatch) -> None:
    rec, _ = saved
    path = tmp_path / "recs.parquet"
    export_recommendations(rec, path, n=2)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        yield _expected(rec, 2).head(3)
        raise KeyboardInterrupt

    monkeypatch.setattr(type(rec), "recommend_all", broken)
    with pytest.raises(KeyboardInterrupt):
        export_recommendations(rec, path, n=2)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_cli_all_users_and_new_user(saved, tmp_path: Path, run) -> None:
    rec, model = saved
    out = tmp_path / "recs.parquet"
    code, stdout, _ = run("recommend", model, "--all-users", "-n", "3", "--out", out, "--json")
    assert code == 0 and json.loads(stdout)["rows"] == len(_expected(rec, 3))
    assert run("recommend", model, "--all-users", "--out", out)[0] == 0  # its own file: replaced
    foreign = tmp_path / "foreign.csv"
    foreign.write_text("keep me\n")
    code, _, stderr = run("recommend", model, "--all-users", "--out", foreign)
    assert code == 2 and "was not written by deepmf" in stderr and foreign.read_text() == "keep me\n"
    assert "needs --out" in run("recommend", model, "--all-users")[2]
    code, stdout, _ = run("recommend", model, "--all-users", "--out", tmp_path / "r.csv")
    assert code == 0 and stdout.startswith("wrote top 10 for ")

    ratings = tmp_path / "me.csv"
    ratings.write_text("item,rating\n101,5\n102,1\n99999,4\n")
    code, stdout, _ = run("recommend", model, "--new-user", ratings, "-n", "4", "--json")
    body = json.loads(stdout)
    expected = rec.recommend_new_user({101: 5.0, 102: 1.0}, n=4)
    assert code == 0 and body["user"] is None and body["unknown_items"] == [99999]
    assert [row["item"] for row in body["items"]] == expected["item"].tolist()
    code, stdout, _ = run("recommend", model, "--new-user", ratings, "-n", "4")
    assert code == 0 and "ignored 1 rated item(s) the model does not know: 99999" in stdout

    for args, message in ((("5", "--new-user", ratings), "exactly one of"), ((), "exactly one of"),
                          (("--new-user", ratings, "--include-seen"), "--include-seen"),
                          (("5", "--out", out), "--out goes with --all-users"),
                          (("--new-user", tmp_path / "none.csv"), "no such file")):
        code, _, stderr = run("recommend", model, *args)
        assert code == 2 and message in stderr and "Traceback" not in stderr


def test_read_item_ratings(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text('# my ratings\nitem,rating\n\n50,5\n"a,b", 3.5\n172,4\n')
    frame = read_item_ratings(path)
    assert frame["item"].tolist() == ["50", "a,b", "172"] and frame["rating"].tolist() == [5.0, 3.5, 4.0]
    path.write_text("50,5\n172,4\n")  # no header
    assert read_item_ratings(path)["item"].tolist() == ["50", "172"]
    for text, message in (("item,rating\n50,5\n60\n", r"r.csv:3: expected item,rating"),
                          ("50,five\n", r"r.csv:1: rating 'five' is not a number"),
                          ("item,rating\n", "no ratings"), ("50,5,1\n", "r.csv:1: expected")):
        path.write_text(text)
        with pytest.raises(DataError, match=message):
            read_item_ratings(path)
    path.write_bytes(b"\xff\xfe50,5")
    with pytest.raises(DataError, match="UTF-8"):
        read_item_ratings(path)
    with pytest.raises(DataError, match="is a folder"):
        read_item_ratings(tmp_path)


def test_a_full_disk_is_one_error_and_keeps_the_old_file(saved, tmp_path: Path, monkeypatch) -> None:
    import errno
    import os

    rec, _ = saved
    path = tmp_path / "recs.csv"
    export_recommendations(rec, path, n=2)
    before = path.read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match=f"cannot write {path}: No space left on device"):
        export_recommendations(rec, path, n=3)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]
