"""Top-N for every user to Parquet/CSV (chunked, atomic, never replacing a file unasked), `recommend --all-users`
and `recommend --new-user` on the command line, and the item,rating file reader (CPU)."""

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
from deepmf.errors import ConfigError, DataError
from deepmf.recommender import export


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
    monkeypatch.setattr(export, "EXPORT_CELLS", 7 * rec.n_items)  # 7 users per chunk: several chunks
    path = tmp_path / f"recs{suffix}"
    summary = rec.write_recommendations(path, n=4)
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
    rec.write_recommendations(tmp_path / "recs.parquet", n=3, min_ratings=threshold)
    items = pq.read_table(tmp_path / "recs.parquet").column("item").to_pylist()
    counts = rec.seen.item_counts()
    assert all(counts[rec.item_ids.index(item)] >= threshold for item in items)


def test_an_existing_file_is_kept_unless_overwrite(saved, tmp_path: Path) -> None:
    rec, _ = saved
    path = tmp_path / "mine.csv"
    path.write_text("precious\n")
    with pytest.raises(ConfigError, match="already exists"):
        rec.write_recommendations(path)
    assert path.read_text() == "precious\n"
    rec.write_recommendations(path, n=2, overwrite=True)
    assert pd.read_csv(path)["rank"].max() == 2
    with pytest.raises(ConfigError, match="is a folder"):
        rec.write_recommendations(tmp_path)


def test_an_interrupted_write_leaves_the_old_file(saved, tmp_path: Path, monkeypatch) -> None:
    rec, _ = saved
    path = tmp_path / "recs.parquet"
    rec.write_recommendations(path, n=2)
    before = path.read_bytes()

    def broken(*args, **kwargs):
        yield _expected(rec, 2).head(3)
        raise KeyboardInterrupt

    monkeypatch.setattr(type(rec), "recommend_all", broken)
    with pytest.raises(KeyboardInterrupt):
        rec.write_recommendations(path, n=2, overwrite=True)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_cli_all_users_and_new_user(saved, tmp_path: Path, run) -> None:
    rec, model = saved
    out = tmp_path / "recs.parquet"
    code, stdout, _ = run("recommend", model, "--all-users", "-n", "3", "--out", out, "--json")
    assert code == 0 and json.loads(stdout)["rows"] == len(_expected(rec, 3))
    code, _, stderr = run("recommend", model, "--all-users", "--out", out)
    assert code == 2 and "already exists" in stderr
    assert run("recommend", model, "--all-users", "--out", out, "--force")[0] == 0
    assert "needs --out" in run("recommend", model, "--all-users")[2]

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
                          (("5", "--out", out), "--out and --force go with --all-users"),
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
