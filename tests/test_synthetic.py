"""Synthetic data (tutorial 000): noise vs low-rank matrices sampled at distinct cells."""

from __future__ import annotations

import numpy as np
import pytest

from deepmf.data.synthetic import synthetic_ratings
from deepmf.errors import ConfigError


def _dense(r) -> np.ndarray:
    full = np.full((r.n_users, r.n_items), np.nan)
    full[r.users, r.items] = r.ratings
    return full


def test_defaults_reproduce_the_tutorial_sizes() -> None:
    r = synthetic_ratings()
    assert (len(r), r.n_users, r.n_items) == (35_000, 250, 250)
    keys = r.users.astype(np.int64) * r.n_items + r.items
    assert len(np.unique(keys)) == 35_000  # distinct cells
    # Sum of 25 products of independent N(0, 1): variance 25 (tutorial: "a larger variance").
    assert 23.0 < float(np.var(r.ratings)) < 27.0
    noise = synthetic_ratings("noise")
    assert abs(float(np.mean(noise.ratings))) < 0.03 and 0.95 < float(np.var(noise.ratings)) < 1.05


def test_lowrank_is_low_rank_and_noise_is_not() -> None:
    full_low = _dense(synthetic_ratings("lowrank", n_users=30, n_items=20, rank=3, n_observed=600, seed=4))
    full_noise = _dense(synthetic_ratings("noise", n_users=30, n_items=20, n_observed=600, seed=4))
    assert not np.isnan(full_low).any()
    assert np.linalg.matrix_rank(full_low, tol=1e-3) == 3
    assert np.linalg.matrix_rank(full_noise, tol=1e-3) == 20


def test_noise_parameter_adds_variance_and_seed_is_the_only_randomness() -> None:
    clean = synthetic_ratings(n_users=50, n_items=40, rank=2, n_observed=1500, seed=1)
    noisy = synthetic_ratings(n_users=50, n_items=40, rank=2, n_observed=1500, noise=2.0, seed=1)
    np.testing.assert_array_equal(clean.users, noisy.users)
    residual = noisy.ratings - clean.ratings
    assert 3.4 < float(np.var(residual)) < 4.6
    again = synthetic_ratings(n_users=50, n_items=40, rank=2, n_observed=1500, seed=1)
    np.testing.assert_array_equal(clean.ratings, again.ratings)
    other = synthetic_ratings(n_users=50, n_items=40, rank=2, n_observed=1500, seed=2)
    assert not np.array_equal(clean.ratings, other.ratings)
    assert clean.meta["synthetic"]["rank"] == 2 and clean.meta["edition"] == "synthetic"


def test_every_user_and_item_is_in_the_maps() -> None:
    r = synthetic_ratings(n_users=100, n_items=100, n_observed=10)
    assert r.n_users == 100 and r.n_items == 100 and r.user_ids.raw(99) == 99


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "other"},
        {"n_observed": 101, "n_users": 10, "n_items": 10},
        {"rank": 0},
        {"noise": -1.0},
        {"n_users": 2.5},
    ],
)
def test_bad_parameters(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        synthetic_ratings(**kwargs)


def test_noise_floor_and_share_learned() -> None:
    from deepmf.data.synthetic import LEARNED_SHARE, noise_floor, share_learned

    assert noise_floor(synthetic_ratings("noise", n_observed=100)) == 1.0
    assert noise_floor(synthetic_ratings("lowrank", n_observed=100, noise=0.5)) == 0.5
    # RMSE 4.72 against a spread of 5.00 and a floor of 0: 5.6 % of the way, far from "learned".
    assert share_learned(4.72, 5.0, 0.0) == pytest.approx(0.056)
    assert share_learned(2.5, 5.0, 0.0) == pytest.approx(LEARNED_SHARE)
    assert share_learned(1.0, 1.0, 1.0) is None  # nothing to learn
    assert share_learned(0.99, 1.005, 1.0) is None  # a sample's spread strays a little from the generator's


def test_movielens_like_is_shaped_like_ml100k() -> None:
    from deepmf.data.synthetic import GENRE_SHARES, movielens_like

    data = movielens_like()
    assert (len(data), data.n_users, data.n_items) == (100_000, 943, 1682)
    assert set(np.unique(data.ratings)) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert 3.4 <= data.ratings.mean() <= 3.7 and 1.0 <= data.ratings.std() <= 1.25  # ML-100K: 3.53, 1.13
    per_user, per_item = data.user_counts(), data.item_counts()
    assert per_user.min() >= 20 and per_user.max() >= 8 * np.median(per_user)  # a few very active users
    assert per_item.max() >= 15 * np.median(per_item) and np.median(per_item) < 60  # a long tail of films
    pairs = data.users.astype(np.int64) * data.n_items + data.items
    assert len(np.unique(pairs)) == len(data)  # one rating per (user, item)
    titles = data.item_table.titles
    assert len(set(titles)) == len(titles) and all(t.endswith(")") and t[-5:-1].isdigit() for t in titles)
    assert not [t for t in titles if t[:2] == "A " and t[2] in "AEIOU"]  # "An Electric Machine", not "A Electric"
    assert any(t.startswith("An ") for t in titles)
    genres_per_item = data.item_table.genres.sum(axis=1)
    assert genres_per_item.min() >= 1 and data.item_table.genre_names == tuple(GENRE_SHARES)
    assert data.meta["edition"] == "generated" and "generated" in data.name
    np.testing.assert_array_equal(movielens_like(seed=0).ratings, data.ratings)
    assert not np.array_equal(movielens_like(seed=1).ratings, data.ratings)


def test_movielens_like_refuses_impossible_sizes() -> None:
    from deepmf.data.synthetic import movielens_like

    with pytest.raises(ConfigError, match="20 x n_users"):
        movielens_like(n_users=100, n_items=100, n_ratings=1000)
