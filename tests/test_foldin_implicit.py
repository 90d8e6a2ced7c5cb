"""Fold-in of new users for implicit-feedback models (CPU): the Recommender takes a new user's interactions as
the model's training data was made (ratings over its threshold, or event counts) and ranks with the model's own
``fold_in_user`` / ``score_user_vectors``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import deepmf
from deepmf.data.implicit import to_implicit
from deepmf.data.ratings import Ratings
from deepmf.data.synthetic import planted_interactions
from deepmf.errors import DataError, UnsupportedError


@pytest.fixture(scope="module")
def planted():
    return planted_interactions(n_users=100, n_items=50, per_user=8)


def _interactions(rec, user_index: int) -> dict:
    _, items, weights = rec.seen.rows(np.array([user_index]))
    return dict(zip(rec.item_ids.raw(items).tolist(), weights.tolist(), strict=True))


def test_ials_folds_a_trained_user_back_into_his_own_list(planted) -> None:
    # With as many conjugate-gradient steps as factors, each user's row is the exact solve that fold_in_user
    # recomputes: his interactions folded in rank exactly as he does.
    rec = deepmf.fit(planted, model="ials", factors=8, cg_steps=8, epochs=3, threads=1)
    for index in (0, 7, 42):
        user = rec.user_ids.raw(index)
        expected = rec.recommend(user, n=5)
        folded = rec.recommend_new_user(_interactions(rec, index), n=5)
        assert folded["item"].tolist() == expected["item"].tolist()
        np.testing.assert_allclose(folded["score"], expected["score"], rtol=1e-4, atol=1e-5)
        items = expected["item"].tolist()[:3]
        np.testing.assert_allclose(rec.predict_new_user(_interactions(rec, index), items),
                                   rec.predict_many([user] * 3, items), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["bpr", "ease", "pop"])
def test_other_implicit_models_fold_in_and_never_recommend_an_interaction(planted, name: str) -> None:
    rec = deepmf.fit(planted, model=name, threads=1, **({"epochs": 3} if name == "bpr" else {}))
    given = _interactions(rec, 3)
    top = rec.recommend_new_user(given, n=10)
    assert len(top) == 10 and not set(top["item"]) & set(given)
    assert top["score"].is_monotonic_decreasing
    if name == "pop":  # the popularity list, less what he has
        popular = rec.model.popularity.numpy()
        order = [i for i in np.argsort(-popular, kind="stable") if rec.item_ids.raw(int(i)) not in given]
        assert set(top["score"]) == {float(popular[i]) for i in order[:10]}


def test_a_threshold_model_takes_ratings_over_it_and_never_recommends_the_rest(tiny_ratings: Ratings) -> None:
    data = to_implicit(tiny_ratings, positive=4)
    rec = deepmf.fit(data, model="ials", factors=4, epochs=3, threads=1)
    liked = {101: 5, 102: 4}
    below = {103: 1, 104: 3}
    with_below = rec.recommend_new_user({**liked, **below}, n=rec.n_items)
    only_liked = rec.recommend_new_user(liked, n=rec.n_items)
    assert not set(with_below["item"]) & {*liked, *below}
    # The ratings under the threshold change nothing but what is left out.
    kept = only_liked[~only_liked["item"].isin(below)]
    assert with_below["item"].tolist() == kept["item"].tolist()
    np.testing.assert_allclose(with_below["score"], kept["score"], rtol=1e-6)
    with pytest.raises(DataError, match="none of the new user's ratings reaches 4"):
        rec.recommend_new_user(below)
    with pytest.raises(DataError, match="must be >= 0"):
        rec.recommend_new_user({101: -1})


def test_event_counts_must_be_positive(planted) -> None:
    rec = deepmf.fit(planted, model="ease", threads=1)
    with pytest.raises(DataError, match="event count 0"):
        rec.recommend_new_user({rec.item_ids.raw(0): 0})


def test_a_bce_deep_model_says_it_cannot(planted) -> None:
    rec = deepmf.fit(planted, model="deepmf", loss="bce", epochs=1, threads=1)
    with pytest.raises(UnsupportedError, match=r"'deepmf' scores implicit feedback .* bpr, ials, ease and pop"):
        rec.recommend_new_user(_interactions(rec, 0))


@pytest.fixture(scope="module")
def tiny_ratings() -> Ratings:
    rng = np.random.default_rng(5)
    users, items = np.nonzero(rng.random((30, 20)) < 0.5)
    frame = pd.DataFrame({"user": users + 1, "item": items + 101,
                          "rating": rng.integers(1, 6, len(users)).astype(np.float32)})
    return Ratings.from_frame(frame, name="tiny")
