"""The short Python API: deepmf.load / split / fit."""

from __future__ import annotations

import pytest

import deepmf
from deepmf.data.synthetic import synthetic_ratings


@pytest.fixture(scope="module")
def lowrank():
    return synthetic_ratings("lowrank", n_users=60, n_items=50, rank=3, n_observed=2400, noise=0.1, seed=1)


def test_fit_learns_low_rank_data_and_answers_in_raw_ids(lowrank):
    split = deepmf.split(lowrank, "random:0.2", seed=0)
    # patience=0: on 1,920 ratings MF's default early stopping (patience 3) can end the run at epoch 4, before
    # the factors leave their small initial values (seeds 1, 3 and 4 then score 1.57, the ratings' std).
    rec = deepmf.fit(split.train, model="mf", factors=8, epochs=60, patience=0, engine="torch", threads=1, seed=0)
    rmse = rec.evaluate(split.test).metrics["rmse"]
    # Measured 0.40..0.48 over seeds 0..4; the test ratings' std is 1.56 and biases-only scores 1.62
    # (bench/bounds.py --only fit).
    assert rmse < 0.6
    user = lowrank.user_ids.raw(0)
    top = rec.recommend(user, n=5)
    seen = set(split.train.item_ids.raw(split.train.items[split.train.users == 0]).tolist())
    assert len(top) == 5 and not seen & set(top["item"].tolist())


def test_fit_routes_options_and_refuses_unknown_ones(lowrank):
    with pytest.raises(deepmf.ConfigError):
        deepmf.fit(lowrank, model="mf", no_such_option=1, epochs=1)
    with pytest.raises(deepmf.ConfigError, match="learning rate"):
        deepmf.fit(lowrank, model="mf", lr=-1.0)
    with pytest.raises(deepmf.ConfigError, match="validation fraction"):
        deepmf.fit(lowrank, model="mf", valid_fraction=1.5)


def test_split_refuses_multi_split_specs(lowrank):
    with pytest.raises(deepmf.ConfigError, match="gives 3 splits"):
        deepmf.split(lowrank, "kfold:3")
