"""Embeddings out (CPU): user_vectors/item_vectors, ``deepmf export`` to parquet, one-line reprs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import deepmf
from deepmf.errors import OutputError
from deepmf.export import export_vectors
from deepmf.testing.conformance import conformance_data


@pytest.fixture(scope="module")
def trained():
    data = conformance_data()
    split = deepmf.split(data, "random:0.2")
    rec = deepmf.fit(split.train, "mf", factors=4, epochs=3, threads=1)
    return data, split, rec


def test_user_and_item_vectors_are_the_model_rows(trained) -> None:
    _, _, rec = trained
    users, items = rec.user_vectors(), rec.item_vectors()
    assert users.shape == (rec.n_users, 4) and items.shape == (rec.n_items, 4)
    np.testing.assert_array_equal(users, rec.model.user_factors.weight.detach().numpy())
    # The dot product of the vectors plus the biases is the prediction.
    global_bias, user_bias, item_bias = (t.numpy() for t in rec.model.bias_terms())
    user, item = rec.user_ids.raw(3), rec.item_ids.raw(5)
    expected = global_bias + user_bias[3] + item_bias[5] + users[3] @ items[5]
    assert float(rec.predict(user, item).prediction) == pytest.approx(
        float(np.clip(expected, rec.scale.minimum, rec.scale.maximum)), abs=1e-5)


def test_export_writes_raw_ids_vectors_and_biases(trained, tmp_path: Path) -> None:
    _, _, rec = trained
    path = export_vectors(rec, tmp_path / "vectors.parquet")
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["side", "id", "title", "ratings", "bias", "vector"]
    users, items = frame[frame.side == "user"], frame[frame.side == "item"]
    assert len(users) == rec.n_users and len(items) == rec.n_items
    assert list(items["id"]) == list(rec.item_ids.raw(np.arange(rec.n_items)))
    np.testing.assert_allclose(np.stack(items["vector"]), rec.item_vectors())
    np.testing.assert_allclose(users["bias"], rec.model.bias_terms()[1].numpy())
    assert list(users["ratings"]) == list(rec.seen.user_counts())
    import pyarrow.parquet as pq

    meta = json.loads(pq.read_schema(path).metadata[b"deepmf"])
    assert meta["model"] == "mf" and meta["global_bias"] == pytest.approx(float(rec.model.global_bias.detach()))


def test_export_replaces_its_own_file_and_never_a_foreign_one(trained, tmp_path: Path) -> None:
    _, _, rec = trained
    path = tmp_path / "vectors.parquet"
    export_vectors(rec, path)
    export_vectors(rec, path)  # an earlier export is replaced
    foreign = tmp_path / "mine.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(foreign)
    before = foreign.read_bytes()
    with pytest.raises(OutputError, match="was not written by deepmf"):
        export_vectors(rec, foreign)
    assert foreign.read_bytes() == before
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    with pytest.raises(OutputError, match="was not written by deepmf"):
        export_vectors(rec, notes)
    assert notes.read_text() == "keep me"


def test_export_command(run, trained, tmp_path: Path) -> None:
    _, _, rec = trained
    model_dir = rec.save(tmp_path / "model")
    code, out, _ = run("export", model_dir, "--out", tmp_path / "v.parquet", "--json")
    assert code == 0 and json.loads(out)["users"] == rec.n_users
    assert len(pd.read_parquet(tmp_path / "v.parquet")) == rec.n_users + rec.n_items
    (tmp_path / "other.parquet").write_text("not parquet")
    code, out, _ = run("export", model_dir, "--out", tmp_path / "other.parquet", "--json")
    assert code == 2 and "was not written by deepmf" in json.loads(out)["error"]


def test_reprs_are_one_line_summaries(trained) -> None:
    data, split, rec = trained
    for obj, start in ((data, "Ratings("), (split, "Split('random:0.2'"), (rec, "Recommender('mf'")):
        text = repr(obj)
        assert text.startswith(start) and "\n" not in text and len(text) < 200
    assert f"{len(split.train):,} train" in repr(split)
    assert "engine numba" in repr(rec)
