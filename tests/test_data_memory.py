"""The lean loading path: block-by-block parsing (with read_csv's whole-column typing as the fallback),
column copies made chunk by chunk, int32 raw ids, sliced validation, and splits and tensors without
needless copies. Small blocks and slices stand in for a 20M-row file."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepmf.data import load, scale, textfile
from deepmf.data.ratings import Ratings, RatingScale
from deepmf.data.splits import kfold_splits, random_split
from deepmf.errors import DataError, DataWarning


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of 1 KiB: a few hundred rows make many chunks, and type inference sees only the first block."""
    monkeypatch.setattr(textfile, "BLOCK_BYTES", 1024)


def _csv(tmp_path: Path, frame: pd.DataFrame) -> Path:
    path = tmp_path / "ratings.csv"
    frame.to_csv(path, index=False)
    return path


def _frame(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cells = rng.choice(300 * 200, size=n, replace=False)
    return pd.DataFrame({"userId": cells // 200 + 1, "movieId": cells % 200 + 1,
                         "rating": rng.integers(1, 11, n) * 0.5, "timestamp": rng.integers(0, 2**40, n)})


def test_many_chunks_round_trip_exactly(tmp_path: Path, small_blocks: None) -> None:
    frame = _frame(3000)
    r = load(_csv(tmp_path, frame))
    back = r.to_frame()
    np.testing.assert_array_equal(back["user"], frame["userId"])
    np.testing.assert_array_equal(back["item"], frame["movieId"])
    np.testing.assert_array_equal(back["rating"], frame["rating"].astype(np.float32))
    np.testing.assert_array_equal(back["timestamp"], frame["timestamp"])
    assert r.users.dtype == np.int32 and r.ratings.dtype == np.float32 and r.timestamps.dtype == np.int64
    assert all(a.flags.writeable for a in (r.users, r.items, r.ratings, r.timestamps))


def test_a_column_that_changes_type_after_the_first_block(tmp_path: Path, small_blocks: None) -> None:
    # Integer ratings and numeric user ids for hundreds of rows, then a half star and a named user: the
    # streaming reader typed the columns from its first block, so the whole-column reader must take over.
    frame = _frame(400)
    frame["rating"] = frame["rating"].round().clip(1, 5).astype(int).astype(object)
    frame.loc[399, "rating"] = 3.5
    frame["userId"] = frame["userId"].astype(object)
    frame.loc[398, "userId"] = "zoe"
    with pytest.warns(DataWarning, match=r"1 rating \(3\.5; first at line 401\) lies off the step 1"):
        r = load(_csv(tmp_path, frame))
    assert r.user_ids.kind == "str" and r.user_ids.raw(r.users[398]) == "zoe"
    assert r.ratings[399] == 3.5 and r.ratings[:399].tolist() == frame["rating"][:399].astype(float).tolist()
    assert r.scale == RatingScale(1.0, 5.0, 0.5)


def test_ids_beyond_int32_are_kept_exactly(tmp_path: Path, small_blocks: None) -> None:
    frame = _frame(500)
    frame.loc[7, "userId"] = 2**31 + 5  # one id past int32: the column stays int64
    r = load(_csv(tmp_path, frame))
    assert r.user_ids.raw(r.users[7]) == 2**31 + 5
    np.testing.assert_array_equal(r.to_frame()["user"], frame["userId"])


def test_bad_values_far_down_name_their_line(tmp_path: Path, small_blocks: None,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(scale, "CHECK_SLICE", 16)  # validation in slices of 16 rows
    frame = _frame(300)
    frame.loc[250, "rating"] = 7.0
    with pytest.raises(DataError, match=r"ratings\.csv:252: rating 7 is outside the scale 0.5..5"):
        load(_csv(tmp_path, frame), scale=RatingScale(0.5, 5.0, 0.5))
    frame.loc[250, "rating"] = np.inf
    with pytest.raises(DataError, match=r"ratings\.csv:252: infinite rating"):
        load(_csv(tmp_path, frame))


def test_a_duplicate_far_from_its_first_is_still_refused(tmp_path: Path, small_blocks: None) -> None:
    frame = _frame(300)
    frame.loc[280, ["userId", "movieId"]] = frame.loc[3, ["userId", "movieId"]].to_numpy()
    with pytest.raises(DataError, match=r"ratings\.csv:282: duplicate rating .* \(first at line 5\)"):
        load(_csv(tmp_path, frame))
    assert len(load(_csv(tmp_path, frame), duplicates="last")) == 299


def _ratings(n: int) -> Ratings:
    frame = _frame(n).rename(columns={"userId": "user", "movieId": "item"})
    return Ratings.from_frame(frame, scale=RatingScale(0.5, 5.0, 0.5))


def test_splits_hold_out_the_same_rows_as_a_full_permutation() -> None:
    r = _ratings(1000)
    order = np.random.default_rng(4).permutation(len(r))  # the definition the splits have always followed
    split = random_split(r, 0.2, seed=4)
    np.testing.assert_array_equal(np.sort(split.test.users.astype(np.int64) * 1000 + split.test.items),
                                  np.sort(r.users[order[:200]].astype(np.int64) * 1000 + r.items[order[:200]]))
    folds = kfold_splits(r, 3, seed=4)
    for i, fold in enumerate(folds):
        rows = np.sort(order[np.arange(len(r)) % 3 == i])
        np.testing.assert_array_equal(fold.test.ratings, r.ratings[rows])


def test_to_shares_writable_ratings_and_copies_read_only_ones() -> None:
    r = _ratings(50)
    tensors = r.to()
    assert tensors.ratings.data_ptr() == r.ratings.ctypes.data  # no copy of a writable float32 array
    frozen = r.ratings.copy()
    frozen.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns when it wraps a read-only array
        copied = r.with_ratings(frozen).to().ratings
    assert copied.data_ptr() != frozen.ctypes.data and torch.equal(copied, torch.from_numpy(r.ratings))
