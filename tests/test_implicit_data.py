"""Implicit feedback data: thresholds, event logs without ratings, counts, splits and the validation carve."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepmf.data import load
from deepmf.data.idmap import IdMap
from deepmf.data.implicit import IMPLICIT_SCALE, to_implicit
from deepmf.data.ratings import Ratings, RatingScale
from deepmf.data.splits import parse_split, validation_split
from deepmf.data.synthetic import planted_interactions
from deepmf.errors import ConfigError, DataError


def _explicit(users, items, ratings, times=None) -> Ratings:
    return Ratings(np.asarray(users, dtype=np.int32), np.asarray(items, dtype=np.int32),
                   np.asarray(ratings, dtype=np.float32), IdMap(np.arange(3), "int", "user"),
                   IdMap(np.arange(4), "int", "item"), RatingScale(1, 5, 1),
                   timestamps=None if times is None else np.asarray(times, dtype=np.int64), name="t")


def test_threshold_keeps_ratings_at_or_above_it_and_counts_repeats() -> None:
    r = _explicit([0, 0, 1, 1, 0, 2], [1, 2, 3, 3, 1, 0], [5, 2, 4, 5, 4, 3], [10, 20, 30, 40, 50, 60])
    implicit = to_implicit(r, positive=4)
    assert implicit.feedback == "implicit" and implicit.scale == IMPLICIT_SCALE
    # (0,1) twice -> weight 2, latest time 50; (1,3) twice -> weight 2, time 40; ratings 2 and 3 dropped.
    assert list(zip(implicit.users, implicit.items, implicit.ratings, implicit.timestamps, strict=True)) == [
        (0, 1, 2.0, 50), (1, 3, 2.0, 40)]
    assert implicit.meta["positive"] == 4.0 and implicit.meta["source_scale"] == {"min": 1, "max": 5, "step": 1}
    assert implicit.user_ids is r.user_ids  # user 2 (no positive) stays known, with no interaction
    every = to_implicit(r)
    assert len(every) == 4 and every.ratings.tolist() == [2.0, 1.0, 2.0, 1.0]


def test_threshold_errors() -> None:
    r = _explicit([0], [1], [3])
    with pytest.raises(DataError, match="no rating is >= 4"):
        to_implicit(r, positive=4)
    with pytest.raises(ConfigError, match="already implicit"):
        to_implicit(to_implicit(r))
    with pytest.raises(ConfigError, match="positive"):
        to_implicit(r, positive=float("nan"))


def test_event_log_without_rating_column(tmp_path: Path) -> None:
    log = tmp_path / "plays.csv"
    log.write_text("user,item,timestamp\nann,song1,5\nann,song1,9\nbob,song2,7\nann,song2,8\n")
    r = load(log, feedback="implicit")
    frame = r.to_frame()
    assert r.feedback == "implicit" and r.meta["positive"] is None
    assert frame.values.tolist() == [["ann", "song1", 2.0, 9], ["bob", "song2", 1.0, 7], ["ann", "song2", 1.0, 8]]
    with pytest.raises(ConfigError, match="--positive needs a rating column"):
        load(log, feedback="implicit", positive=4)
    with pytest.raises(DataError, match="rating"):  # an explicit load still needs ratings
        load(log)


def test_headerless_two_column_log_and_option_checks(tmp_path: Path) -> None:
    log = tmp_path / "clicks.tsv"
    log.write_text("1\t10\n1\t10\n2\t11\n")
    r = load(log, feedback="implicit")
    assert r.ratings.tolist() == [2.0, 1.0]
    with pytest.raises(ConfigError, match="add --feedback implicit"):
        load(log, positive=4)
    with pytest.raises(ConfigError, match="counts repeated events"):
        load(log, feedback="implicit", duplicates="last")
    with pytest.raises(ConfigError, match="unknown feedback"):
        load(log, feedback="clicks")


def test_movielens_threshold(ml100k_dir: Path) -> None:
    r = load(ml100k_dir, feedback="implicit", positive=4)
    raw = pd.read_csv(ml100k_dir / "u.data", sep="\t", header=None)
    assert len(r) == int((raw[2] >= 4).sum()) == 55_375
    assert set(np.unique(r.ratings)) == {1.0} and r.n_users == 943


def test_split_specs_for_implicit_feedback() -> None:
    data = planted_interactions(n_users=20, n_items=20, n_groups=2, per_user=5)
    for spec in ("leave-last-out", "ncf"):
        (split,) = parse_split(spec, data)
        assert split.name == spec and len(split.test) == data.n_users and split.test.feedback == "implicit"
        # Each held-out interaction is its user's latest.
        latest = pd.Series(data.timestamps).groupby(data.users).max()
        assert np.array_equal(split.test.timestamps, latest.loc[split.test.users].to_numpy())
    fit, valid = validation_split(data, 0.2, seed=0)
    # Per user: 1 of 5 interactions carved, every user keeps 4 for training.
    assert np.array_equal(np.bincount(valid.users, minlength=20), np.ones(20))
    assert valid.feedback == fit.feedback == "implicit"


def test_canonical_and_file_splits_become_interactions(ml100k_dir: Path, tmp_path: Path) -> None:
    data = load(ml100k_dir, feedback="implicit", positive=4)
    (u1,) = parse_split("u1", data)
    base = pd.read_csv(ml100k_dir / "u1.base", sep="\t", header=None)
    assert u1.train.feedback == "implicit" and len(u1.train) == int((base[2] >= 4).sum())
    train, test = tmp_path / "train.csv", tmp_path / "test.csv"
    train.write_text("user,item,rating\n1,1,5\n1,2,3\n2,1,4\n2,3,1\n")  # spans the test file's 1..5
    test.write_text("user,item,rating\n2,2,5\n1,3,2\n")
    local = load(train, feedback="implicit", positive=4)
    (split,) = parse_split(f"files:{train},{test}", local)
    assert len(split.train) == 2 and len(split.test) == 1 and split.test.feedback == "implicit"
