"""Splits: disjoint, complete, seeded (property tests); per-kind guarantees; cold start; parse_split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmf.data import load
from deepmf.data.ratings import Ratings
from deepmf.data.splits import (
    Split,
    drop_cold,
    file_split,
    kfold_splits,
    make_split,
    parse_split,
    random_split,
    temporal_split,
    user_split,
    user_temporal_split,
    validation_split,
)
from deepmf.errors import ConfigError, DataError


def _ratings(n_users: int, n_items: int, n: int, seed: int) -> Ratings:
    rng = np.random.default_rng(seed)
    cells = rng.choice(n_users * n_items, size=min(n, n_users * n_items), replace=False)
    n = len(cells)
    frame = pd.DataFrame(
        {
            "user": cells // n_items,
            "item": cells % n_items,
            "rating": rng.integers(1, 6, size=n).astype(float),
            "ts": rng.integers(0, 50, size=n),
        }
    )
    return Ratings.from_frame(frame, time_col="ts")


def _keys(r: Ratings) -> np.ndarray:
    return np.sort(r.users.astype(np.int64) * r.n_items + r.items)


def _assert_partition(r: Ratings, split: Split) -> None:
    assert split.train.user_ids is r.user_ids and split.test.item_ids is r.item_ids
    assert len(np.intersect1d(_keys(split.train), _keys(split.test))) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([_keys(split.train), _keys(split.test)])), _keys(r))


data_sets = st.builds(
    _ratings,
    n_users=st.integers(2, 12),
    n_items=st.integers(2, 12),
    n=st.integers(4, 20),
    seed=st.integers(0, 10_000),
)
fractions = st.floats(0.05, 0.95)
seeds = st.integers(0, 2**31 - 1)


@settings(max_examples=40, deadline=None)
@given(r=data_sets, fraction=fractions, seed=seeds)
def test_single_splits_are_disjoint_complete_and_seeded(r: Ratings, fraction: float, seed: int) -> None:
    makers = [
        lambda s: random_split(r, fraction, s),
        lambda s: user_split(r, test_fraction=fraction, seed=s),
        lambda s: user_split(r, leave_k=2, seed=s),
        lambda s: temporal_split(r, fraction),
        lambda s: user_temporal_split(r, 1),
    ]
    for make in makers:
        split = make(seed)
        _assert_partition(r, split)
        again = make(seed)
        np.testing.assert_array_equal(split.test.users, again.test.users)
        np.testing.assert_array_equal(split.test.items, again.test.items)
    # Global holdouts: round(fraction * n) test ratings, at least one, never all.
    n_test = min(max(round(fraction * len(r)), 1), len(r) - 1)
    assert len(random_split(r, fraction, seed).test) == n_test == len(temporal_split(r, fraction).test)
    # Per-user holdout: rint(fraction * count) of each user's ratings, keeping one for training.
    counts = r.user_counts()
    expected = np.minimum(np.rint(fraction * counts), np.maximum(counts - 1, 0))
    np.testing.assert_array_equal(user_split(r, test_fraction=fraction, seed=seed).test.user_counts(), expected)


@settings(max_examples=30, deadline=None)
@given(r=data_sets, k=st.integers(2, 4), seed=seeds)
def test_kfold_tests_partition_the_data(r: Ratings, k: int, seed: int) -> None:
    folds = kfold_splits(r, k, seed)
    assert len(folds) == k
    for split in folds:
        _assert_partition(r, split)
    all_tests = np.sort(np.concatenate([_keys(s.test) for s in folds]))
    np.testing.assert_array_equal(all_tests, _keys(r))
    sizes = [len(s.test) for s in folds]
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=30, deadline=None)
@given(r=data_sets, seed=seeds)
def test_per_user_holdouts_keep_every_user_in_training(r: Ratings, seed: int) -> None:
    for split in (
        user_split(r, leave_k=2, seed=seed),
        user_split(r, test_fraction=0.5, seed=seed),
        user_temporal_split(r, 2),
    ):
        assert split.cold_users == 0
        train_counts, test_counts = split.train.user_counts(), split.test.user_counts()
        full = r.user_counts()
        assert np.all(train_counts[full > 0] >= 1)
        if split.name.endswith("2"):  # leave2 / last2: min(2, count - 1) held out per user
            np.testing.assert_array_equal(test_counts, np.minimum(2, np.maximum(full - 1, 0)))


@settings(max_examples=30, deadline=None)
@given(r=data_sets, fraction=fractions)
def test_temporal_splits_never_train_on_the_future(r: Ratings, fraction: float) -> None:
    split = temporal_split(r, fraction)
    assert split.train.timestamps.max() <= split.test.timestamps.min()
    per_user = user_temporal_split(r, 1)
    for u in np.unique(per_user.test.users):
        assert (
            per_user.test.timestamps[per_user.test.users == u].min()
            >= per_user.train.timestamps[per_user.train.users == u].max()
        )


def test_cold_start_counts_by_hand() -> None:
    frame = pd.DataFrame(
        {
            "user": ["a", "a", "b", "c", "c", "b"],
            "item": [1, 2, 1, 1, 3, 4],
            "rating": [1.0, 2.0, 3.0, 4.0, 5.0, 1.0],
        }
    )
    r = Ratings.from_frame(frame)
    test_mask = np.array([False, False, False, True, True, True])
    # Train: users a, b; items 1, 2. Test: (c,1) cold user, (c,3) cold user+item, (b,4) cold item.
    split = make_split(r.subset(~test_mask), r.subset(test_mask), "hand")
    assert (split.cold_users, split.cold_items, split.cold_test_ratings) == (1, 2, 3)
    assert split.summary() == {"name": "hand", "n_train": 3, "n_test": 3, "cold_users": 1, "cold_items": 2,
                               "cold_test_ratings": 3}
    warm = drop_cold(split)
    assert len(warm.test) == 0 and (warm.cold_users, warm.cold_items, warm.cold_test_ratings) == (0, 0, 0)
    assert warm.train is split.train


def test_cold_counts_are_distinct_users_and_items_not_test_ratings() -> None:
    """A cold item (or user) with several test ratings counts once in cold_items (cold_users)."""
    frame = pd.DataFrame(
        {
            "user": ["a", "b", "a", "b", "c", "d", "d", "d", "a"],
            "item": [1, 1, 7, 7, 7, 1, 2, 7, 2],
            "rating": [1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0, 3.0, 4.0],
        }
    )
    r = Ratings.from_frame(frame)
    test_mask = np.array([False, False, True, True, True, True, True, True, True])
    # Train: users a, b; item 1. Test: item 7 (cold) rated by a, b, c, d; item 2 (cold) by d and a;
    # user c (cold) once, user d (cold) three times. Rows with a cold user or item: all seven.
    split = make_split(r.subset(~test_mask), r.subset(test_mask), "hand")
    assert (split.cold_users, split.cold_items, split.cold_test_ratings) == (2, 2, 7)
    assert split.summary()["cold_items"] == 2 and split.summary()["cold_users"] == 2
    assert len(drop_cold(split).test) == 0  # every test row involves a cold user or item


def test_drop_cold_keeps_exactly_the_warm_test_ratings() -> None:
    frame = pd.DataFrame(
        {"user": [1, 1, 2, 2, 1, 2, 3, 2], "item": [10, 20, 10, 30, 30, 40, 10, 20],
         "rating": [1.0, 2.0, 3.0, 4.0, 5.0, 1.0, 2.0, 3.0]}
    )
    r = Ratings.from_frame(frame)
    test_mask = np.array([False, False, False, False, True, True, True, True])
    # Train: users 1, 2; items 10, 20, 30. Test rows: (1,30) warm, (2,40) cold item, (3,10) cold user, (2,20) warm.
    split = make_split(r.subset(~test_mask), r.subset(test_mask), "hand")
    assert (split.cold_users, split.cold_items, split.cold_test_ratings) == (1, 1, 2)
    warm = drop_cold(split)
    users, items = warm.test.user_ids.raw(warm.test.users), warm.test.item_ids.raw(warm.test.items)
    assert list(zip(users.tolist(), items.tolist(), strict=True)) == [(1, 30), (2, 20)]
    assert warm.test.ratings.tolist() == [5.0, 3.0] and warm.name == "hand"


def test_validation_carved_from_training_only() -> None:
    r = _ratings(30, 30, 400, seed=3)
    split = random_split(r, 0.2, seed=1)
    fit, valid = validation_split(split.train, 0.1, seed=2)
    assert len(fit) + len(valid) == len(split.train) and len(valid) == 32
    assert len(np.intersect1d(_keys(valid), _keys(split.test))) == 0
    assert set(_keys(valid)) <= set(_keys(split.train))
    _, again_valid = validation_split(split.train, 0.1, seed=2)
    np.testing.assert_array_equal(valid.users, again_valid.users)


def test_canonical_splits(ml100k_dir: Path) -> None:
    r = load(ml100k_dir)
    (u1,) = parse_split("u1", r)
    assert (len(u1.train), len(u1.test)) == (80_000, 20_000)
    assert u1.cold_users == 0 and u1.cold_items == 32 and u1.cold_test_ratings == 32  # see REFERENCES.md
    assert u1.train.item_ids is r.item_ids and u1.test.item_table is r.item_table
    folds = parse_split("canonical", r)
    assert [s.name for s in folds] == ["u1", "u2", "u3", "u4", "u5"]
    tests = np.sort(np.concatenate([_keys(s.test) for s in folds]))
    np.testing.assert_array_equal(tests, _keys(r))  # u1..u5 test parts partition u.data
    (ua,) = parse_split("ua", r)
    assert len(ua.test) == 943 * 10  # ua/ub: exactly 10 test ratings per user


def test_canonical_split_needs_ml100k_files(tmp_path: Path) -> None:
    r = _ratings(5, 5, 10, seed=0)
    with pytest.raises(DataError, match=r"split u1 needs u1\.base and u1\.test"):
        parse_split("u1", r)
    (tmp_path / "u1.base").write_text("1\t1\t5\t0\n")
    r.meta["path"] = str(tmp_path)
    with pytest.raises(DataError, match=r"needs u1\.base and u1\.test of ML-100K in"):
        parse_split("u1", r)  # the folder has u1.base but no u1.test


def test_canonical_split_codes_its_files_with_the_datas_maps(tmp_path: Path) -> None:
    """User and item ids are coded with their own maps (on ML-100K both run 1..N, which hides a mix-up)."""
    base = pd.DataFrame({"user": [3, 3, 70, 70], "item": [500, 8, 8, 42], "rating": [1, 2, 3, 4], "ts": [1, 2, 3, 4]})
    test = pd.DataFrame({"user": [3, 70], "item": [42, 500], "rating": [5, 1], "ts": [5, 6]})
    base.to_csv(tmp_path / "u1.base", sep="\t", header=False, index=False)
    test.to_csv(tmp_path / "u1.test", sep="\t", header=False, index=False)
    r = Ratings.from_frame(pd.concat([base, test]), time_col="ts")
    r.meta["path"] = str(tmp_path)
    (split,) = parse_split("u1", r)
    assert split.train.user_ids is r.user_ids and split.test.item_ids is r.item_ids
    assert split.test.user_ids.raw(split.test.users).tolist() == [3, 70]
    assert split.test.item_ids.raw(split.test.items).tolist() == [42, 500]
    assert split.train.ratings.tolist() == [1, 2, 3, 4] and split.test.timestamps.tolist() == [5, 6]


def test_parse_split_grammar() -> None:
    r = _ratings(20, 20, 200, seed=5)
    expected = {
        "random:0.2": 40,
        "user:0.25": None,
        "user:leave3": None,
        "time:0.1": 20,
        "usertime:last2": None,
    }
    for spec, n_test in expected.items():
        (split,) = parse_split(spec, r, seed=1)
        assert split.name == spec
        if n_test is not None:
            assert len(split.test) == n_test
    assert [s.name for s in parse_split("kfold:4", r)] == ["kfold:4#1", "kfold:4#2", "kfold:4#3", "kfold:4#4"]
    for bad in (
        "random:1.5",
        "random:0",
        "kfold:1",
        "kfold:x",
        "user:leave0",
        "u6",
        "nonsense",
        "time:",
        "usertime:first2",
        "random:0.2,0.3",
    ):
        with pytest.raises(ConfigError):
            parse_split(bad, r)


def test_fractions_outside_zero_one_and_non_numbers_are_refused() -> None:
    r = _ratings(10, 10, 40, seed=0)
    for bad in (0.0, 1.0, -0.5, 1.5, "0.2"):
        for split in (lambda f: random_split(r, f), lambda f: temporal_split(r, f),
                      lambda f: user_split(r, test_fraction=f), lambda f: validation_split(r, f)):
            with pytest.raises(ConfigError, match="between 0 and 1"):
                split(bad)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        random_split(r, None)  # type: ignore[arg-type]
    for bad in (0, -1, 1.0, "2"):
        with pytest.raises(ConfigError, match="leave_k"):
            user_split(r, leave_k=bad)
        with pytest.raises(ConfigError, match="last_k"):
            user_temporal_split(r, bad)
    with pytest.raises(ConfigError, match="exactly one"):
        user_split(r, test_fraction=0.2, leave_k=1)


def test_smallest_cases_and_default_seeds() -> None:
    two = _ratings(1, 2, 2, seed=0)  # one user, two ratings: the least a split takes
    assert (len(random_split(two, 0.5).train), len(random_split(two, 0.5).test)) == (1, 1)
    assert len(random_split(two, 0.01).test) == 1 and len(random_split(two, 0.99).train) == 1
    assert len(user_split(two, leave_k=1).test) == 1 and len(user_temporal_split(two, 1).test) == 1
    assert len(kfold_splits(two, 2)) == 2
    r = _ratings(10, 10, 40, seed=1)
    for split, seeded in ((random_split(r, 0.3), random_split(r, 0.3, seed=0)),
                          (user_split(r, test_fraction=0.3), user_split(r, test_fraction=0.3, seed=0)),
                          (kfold_splits(r, 3)[0], kfold_splits(r, 3, seed=0)[0])):
        np.testing.assert_array_equal(_keys(split.test), _keys(seeded.test))  # the default seed is 0
    assert [s.name for s in kfold_splits(r)] == [f"kfold:5#{i}" for i in range(1, 6)]
    np.testing.assert_array_equal(_keys(kfold_splits(r)[2].test), _keys(kfold_splits(r, 5, seed=0)[2].test))
    assert user_temporal_split(r).name == "usertime:last1"
    _, valid = validation_split(r)
    assert len(valid) == round(0.05 * len(r))
    np.testing.assert_array_equal(_keys(valid), _keys(validation_split(r, 0.05, seed=0)[1]))
    (parsed,) = parse_split("random:0.3", r)
    np.testing.assert_array_equal(_keys(parsed.test), _keys(random_split(r, 0.3, seed=0).test))


def test_temporal_split_without_timestamps() -> None:
    r = Ratings.from_frame(pd.DataFrame({"user": [1, 2, 3], "item": [1, 1, 2], "rating": [1.0, 2.0, 3.0]}))
    with pytest.raises(DataError, match="needs timestamps"):
        temporal_split(r, 0.5)
    with pytest.raises(DataError, match="too few"):
        random_split(r.subset(np.array([True, False, False])), 0.5)


def test_file_split_builds_maps_on_the_union(tmp_path: Path) -> None:
    train = tmp_path / "train.csv"
    test = tmp_path / "test.csv"
    train.write_text("user,item,rating\nu1,a,4\nu2,a,3\nu1,b,5\n")
    test.write_text("user,item,rating\nu2,b,3\nu3,c,4\n")
    split = file_split(train, test)
    assert split.train.n_items == 3 and split.train.item_ids is split.test.item_ids
    assert split.train.user_ids.to_list() == ["u1", "u2", "u3"]
    assert (split.cold_users, split.cold_items, split.cold_test_ratings) == (1, 1, 1)
    # One scale for both parts: the training file's (3..5); the test file is held to it (see below).
    assert split.train.scale == split.test.scale
    assert (split.train.scale.minimum, split.train.scale.maximum) == (3, 5)
    (same,) = parse_split(f"files:{train},{test}", split.train)
    assert len(same.test) == 2
    commas = tmp_path / "test,v2.csv"  # only the first comma separates the two paths
    commas.write_text(test.read_text())
    (same,) = parse_split(f"files:{train},{commas}", split.train)
    assert len(same.test) == 2 and same.name == "files:train.csv,test,v2.csv"
    with pytest.raises(ConfigError, match="unknown option"):
        file_split(train, test, seperator=",")
    # The test file is held to the scale the training file spans (3..5 here): a model never scores a 1.
    test.write_text("user,item,rating\nu2,b,3\nu3,c,1\n")
    with pytest.raises(DataError, match=r"test\.csv:3: rating 1 is outside the training data's scale 3\.\.5"):
        file_split(train, test)
    assert len(file_split(train, test, scale="1,5").test) == 2
