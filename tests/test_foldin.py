"""Fold-in of new users (CPU): each model's solution checked against its own objective, the Recommender's
handling of a new user's ratings, and the trained model left untouched."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import deepmf
from deepmf.data.ratings import ItemTable, Ratings
from deepmf.errors import DataError, UnknownIdError, UnsupportedError
from deepmf.models.base import RatingModel
from deepmf.models.foldin import FoldInContext, ridge
from deepmf.models.layers import ModelConfig

N_USERS, N_ITEMS = 40, 30


def _data(seed: int = 0) -> Ratings:
    """40 users x 30 items from a rank-2 model plus noise, ratings 1..5; raw ids 1.. and 101..; titles."""
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((N_USERS, N_ITEMS)) < 0.5)
    taste = rng.normal(size=(N_USERS, 2)) @ rng.normal(size=(2, N_ITEMS))
    ratings = np.clip(np.round(3.2 + taste[users, items] + rng.normal(0, 0.5, len(users))), 1, 5)
    frame = pd.DataFrame({"user": users + 1, "item": items + 101, "rating": ratings.astype(np.float32)})
    data = Ratings.from_frame(frame, name="tiny")
    titles = np.array([f"Film {i} ({1980 + i})" for i in range(data.n_items)], dtype=object)
    return Ratings(data.users, data.items, data.ratings, data.user_ids, data.item_ids, data.scale,
                   item_table=ItemTable(titles, None, ()), name="tiny")


@pytest.fixture(scope="module")
def tiny() -> Ratings:
    return _data()


def _fit(data: Ratings, model: str, **options):
    return deepmf.fit(data, model=model, seed=0, valid_fraction=0, **options)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in model.state_dict().items()}


def _first_user_ratings(rec) -> dict:
    start, end = rec.seen.indptr[0], rec.seen.indptr[1]
    items = rec.item_ids.raw(rec.seen.items[start:end])
    return dict(zip(items.tolist(), rec.seen.ratings[start:end].tolist(), strict=True))


# ---- the shared ridge solver -------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 6), st.floats(0.0, 5.0), st.integers(0, 2**32 - 1))
def test_ridge_solves_the_normal_equations(n: int, d: int, penalty: float, seed: int) -> None:
    """The minimiser of |y - Xw|^2 + sum lam_j (w_j - m_j)^2 has zero gradient: X^T(Xw - y) + lam (w - m) = 0."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=(n, d)), rng.normal(size=n)
    lam = np.full(d, penalty) + rng.random(d)  # positive, so the problem has one solution
    mean = rng.normal(size=d)
    w = ridge(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(lam), torch.from_numpy(mean)).numpy()
    gradient = x.T @ (x @ w - y) + lam * (w - mean)
    assert np.abs(gradient).max() < 1e-5 * (1 + np.abs(x).max() ** 2 * np.abs(w).max() + np.abs(y).max())


def test_ridge_solves_a_batch_of_problems_independently() -> None:
    rng = np.random.default_rng(1)
    x, y, lam = rng.normal(size=(3, 8, 4)), rng.normal(size=(3, 8)), rng.random((3, 4)) + 0.1
    batch = ridge(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(lam)).numpy()
    for s in range(3):
        alone = ridge(torch.from_numpy(x[s]), torch.from_numpy(y[s]), torch.from_numpy(lam[s])).numpy()
        np.testing.assert_allclose(batch[s], alone, rtol=1e-10)


def test_user_penalty_counts_ratings_and_weight_decay() -> None:
    """Per-rating L2 scales with the user's ratings; weight decay once per step weighs like n_train / 2."""
    assert FoldInContext(l2=0.1).user_penalty(30) == pytest.approx(3.0)
    assert FoldInContext(l2=0.1, row_decay=1e-4, n_train=80_000).user_penalty(30) == pytest.approx(3.0 + 4.0)


# ---- each model's fold-in against its own objective --------------------------------------------------------
def _stationary(rec, ratings: dict, vector_penalty: float, offset_penalty: float | None, fixed=None) -> None:
    """The folded user of a bilinear model zeroes the gradient of his training objective (hand-written here)."""
    new = rec.fold_in(ratings)
    scorer = new.model
    items = torch.from_numpy(new.items)
    vectors = scorer.item_vectors()[items].double().numpy()
    g, user_offset, item_offset = (t.double() for t in scorer.offsets())
    vector = scorer.user_vector[0].double().numpy() - (0 if fixed is None else fixed)
    residual = new.ratings - (g.item() + user_offset[0].item() + item_offset[items].numpy()
                              + vectors @ scorer.user_vector[0].double().numpy())
    np.testing.assert_allclose(-vectors.T @ residual + vector_penalty * vector, 0, atol=1e-4)
    if offset_penalty is not None:
        assert abs(-residual.sum() + offset_penalty * user_offset[0].item()) < 1e-4


def test_mf_fold_in_is_the_ridge_of_its_per_rating_l2(tiny: Ratings) -> None:
    rec = _fit(tiny, "mf", factors=4, epochs=30)
    ratings = _first_user_ratings(rec)
    penalty = rec.train_config.l2 * len(ratings)
    _stationary(rec, ratings, penalty, penalty)


def test_mf_fold_in_reproduces_a_converged_trained_user(tiny: Ratings) -> None:
    """Folding in a trained user from his own training ratings gives back (nearly) his learned predictions:
    the trained user row solves the same objective at convergence (numba SGD, 300 epochs, small lr)."""
    rec = _fit(tiny, "mf", factors=3, epochs=300, lr=0.01, l2=0.05)
    ratings = _first_user_ratings(rec)
    raw_items = rec.item_ids.raw(np.arange(rec.n_items))
    folded = rec.predict_new_user(ratings, raw_items)
    trained = rec.predict_many([rec.user_ids.raw(0)] * rec.n_items, raw_items)
    assert np.abs(folded - trained).max() < 0.05


def test_mf_without_bias_fits_the_vector_only(tiny: Ratings) -> None:
    rec = _fit(tiny, "mf", factors=4, epochs=20, bias=False, engine="torch")
    ratings = _first_user_ratings(rec)
    new = rec.fold_in(ratings)
    assert float(new.model.user_offset[0]) == 0.0 and float(new.model.global_offset) == 0.0
    _stationary(rec, ratings, rec.train_config.l2 * len(ratings), None)


def test_svdpp_fold_in_fits_p_around_the_fixed_implicit_sum(tiny: Ratings) -> None:
    rec = _fit(tiny, "svdpp", factors=4, epochs=10)
    ratings = _first_user_ratings(rec)
    new = rec.fold_in(ratings)
    items = torch.from_numpy(new.items)
    implicit = (rec.model.implicit_factors.weight[items].sum(0) / len(items) ** 0.5).detach().double().numpy()
    penalty = rec.train_config.l2 * len(ratings)
    _stationary(rec, ratings, penalty, penalty, fixed=implicit)


def test_autorec_fold_in_is_a_new_decoder_row_with_half_l2_and_a_free_bias(tiny: Ratings) -> None:
    rec = _fit(tiny, "autorec", hidden=8, epochs=20)
    ratings = _first_user_ratings(rec)
    _stationary(rec, ratings, rec.train_config.l2 / 2, 0.0)


def test_bayes_fold_in_averages_the_per_sample_posterior_means(tiny: Ratings) -> None:
    rec = _fit(tiny, "bayes", rank=2, samples=5, burn_in=2, epochs=12, implicit_user=False, implicit_item=False)
    ratings = _first_user_ratings(rec)
    new = rec.fold_in(ratings)
    context = rec._fold_in_context()
    priors = context.cache["bayes_priors"]
    model = rec.model
    samples, rank = model.config.samples, model.config.rank
    items = torch.from_numpy(new.items)
    item_samples = (model.item_factors.weight.view(-1, samples, rank) * samples ** 0.5)[items]
    g, _, item_offset = model.offsets()
    folded = new.model.user_vector[0].view(samples, rank) * samples ** 0.5
    for s in range(samples):  # each sample: the Gaussian conditional's mean, by its own normal equations
        x = torch.cat([item_samples[:, s], torch.ones(len(items), 1)], 1).double()
        y = torch.from_numpy(new.ratings) - g.double() - item_offset[items].double()
        precision = torch.cat([priors["precision"][s], priors["offset_precision"].reshape(1)]).double()
        mean = torch.cat([priors["mean"][s], priors["offset_mean"].reshape(1)]).double()
        alpha = priors["noise_precision"][s].double()
        lhs = alpha * x.T @ x + torch.diag(precision)
        solution = torch.linalg.solve(lhs, alpha * x.T @ y + precision * mean)
        np.testing.assert_allclose(folded[s].double().numpy(), solution[:rank].numpy(), rtol=1e-3, atol=1e-4)
    assert float(priors["noise_precision"].min()) > 0


def test_gradient_fold_in_reaches_the_minimum_and_leaves_the_model_alone(tiny: Ratings) -> None:
    """Deep MF: the folded rows minimise the training objective restricted to the user (hand-written here):
    a long Adam run from them improves it by less than 0.1 %."""
    rec = _fit(tiny, "deepmf", factors=4, layers="8", epochs=5)
    before = _state(rec.model)
    ratings = _first_user_ratings(rec)
    new = rec.fold_in(ratings)
    copy = new.model
    rows = [copy.user_embedding.weight, copy.user_bias.weight]
    items = torch.from_numpy(new.items)
    ratings_t = torch.from_numpy(new.ratings.astype(np.float32))
    config = rec.train_config
    strength = config.l2 + config.weight_decay * len(rec.seen.ratings) / (2 * len(items))

    def objective() -> torch.Tensor:
        output = copy(torch.zeros_like(items), items)
        return copy.loss(output, ratings_t) + strength * sum(r.square().sum() for r in rows)

    with torch.no_grad():
        folded = float(objective())
    for row in rows:
        row.requires_grad_(True)
    optimizer = torch.optim.Adam(rows, lr=1e-3)
    for _ in range(2000):
        optimizer.zero_grad()
        loss = objective()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        assert float(objective()) > folded * (1 - 1e-3)
    after = rec.model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)
    # The copy shares the trained item side instead of copying it.
    assert copy.item_embedding.weight.data_ptr() == rec.model.item_embedding.weight.data_ptr()


@pytest.mark.parametrize("model, options", [
    ("mf", {"factors": 3, "epochs": 3}),
    ("mf", {"factors": 3, "epochs": 3, "sigmoid": True}),
    ("svdpp", {"factors": 3, "epochs": 3}),
    ("autorec", {"hidden": 6, "epochs": 5}),
    ("bayes", {"rank": 2, "samples": 3, "burn_in": 1, "epochs": 5}),
    ("deepmf", {"factors": 3, "layers": "4", "epochs": 2, "head": "classification"}),
    ("neumf", {"factors": 3, "layers": "4", "epochs": 2}),
    ("blend:mf,autorec", {"member_options": {"mf": {"factors": 3}, "autorec": {"hidden": 6}},
                          "member_train": {"mf": {"epochs": 3}, "autorec": {"epochs": 5}}}),
])
def test_every_model_folds_in_without_changing_the_trained_model(tiny: Ratings, model: str, options: dict) -> None:
    rec = _fit(tiny, model, **options)
    before = _state(rec.model)
    ratings = _first_user_ratings(rec)
    top = rec.recommend_new_user(ratings, n=5)
    assert len(top) == 5 and not set(top["item"]) & set(ratings)
    assert top["score"].between(1, 5).all() and top["score"].is_monotonic_decreasing
    predicted = rec.predict_new_user(ratings, list(ratings)[:3])
    assert predicted.shape == (3,) and np.isfinite(predicted).all()
    after = rec.model.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


def test_a_model_without_user_parameters_refuses_with_a_typed_error() -> None:
    class Constant(RatingModel):
        name = "constant"

        def __init__(self) -> None:
            super().__init__()
            self.config = ModelConfig(n_users=2, n_items=3)

        def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
            return torch.full(users.shape, 3.0)

    with pytest.raises(UnsupportedError, match=r"constant.*cannot fold in"):
        Constant().fold_in(torch.tensor([0]), torch.tensor([4.0]), FoldInContext())


# ---- the Recommender's side: ratings checked, ids mapped, rated items never recommended ---------------------
@pytest.fixture(scope="module")
def rec(tiny: Ratings):
    return _fit(tiny, "mf", factors=3, epochs=10)


def test_unknown_items_are_reported_not_dropped(rec) -> None:
    ratings = {101: 5.0, 102: 1.0, 99_999: 4.0, "nope": 2.0}
    top = rec.recommend_new_user(ratings, n=3)
    assert top.attrs["unknown_items"] == [99_999, "nope"]
    assert rec.fold_in(ratings).unknown_items == (99_999, "nope")


def test_string_ids_from_a_file_match_integer_ids(rec) -> None:
    frame = pd.DataFrame({"item": ["101", "102"], "rating": [5.0, 1.0]})
    assert rec.recommend_new_user(frame, n=4).equals(rec.recommend_new_user({101: 5.0, 102: 1.0}, n=4))


@pytest.mark.parametrize("ratings, message", [
    ({}, "at least one rating"),
    ({101: float("nan")}, "not a number"),
    ({101: float("inf")}, "not a number"),
    ({101: "five"}, "not a number"),
    ({101: True}, "not a number"),
    ({101: 6.0}, "outside the model's scale 1..5"),
    ({101: 0.5}, "outside the model's scale"),
    ({101: 4.0, "101": 3.0}, "rated 2 times"),
    ({99_999: 4.0}, "none of the new user's 1 rated items is known"),
    (pd.DataFrame({"item": [101]}), "missing: rating"),
    (pd.DataFrame({"item": [101, 101], "rating": [4.0, 4.0]}), "rated 2 times"),
    ([(101, 4.0)], "mapping item -> rating or a DataFrame"),
])
def test_bad_new_user_ratings_are_typed_errors(rec, ratings, message: str) -> None:
    with pytest.raises(DataError, match=message):
        rec.fold_in(ratings)


def test_predict_new_user_refuses_unknown_items(rec) -> None:
    with pytest.raises(UnknownIdError, match="99999"):
        rec.predict_new_user({101: 4.0}, [99_999])


def test_min_ratings_and_n_are_honoured(rec) -> None:
    counts = rec.seen.item_counts()
    threshold = int(np.median(counts)) + 1
    top = rec.recommend_new_user({101: 4.0}, n=30, min_ratings=threshold)
    allowed = set(rec.item_ids.raw(np.flatnonzero(counts >= threshold)).tolist()) - {101}
    assert set(top["item"]) == allowed


@settings(max_examples=25, deadline=None)
@given(st.dictionaries(st.integers(101, 130), st.integers(1, 5), min_size=1, max_size=29), st.integers(1, 30))
def test_rated_items_are_never_recommended_back(rec, ratings: dict, n: int) -> None:
    top = rec.recommend_new_user(ratings, n=n)
    assert not set(top["item"]) & set(ratings)
    assert len(top) == min(n, int((rec.seen.item_counts() > 0).sum()) - len(ratings))
