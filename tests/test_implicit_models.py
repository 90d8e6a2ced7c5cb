"""Implicit-feedback models (CPU): each learns a planted structure far better than popularity; fold-in math;
option checks; the Trainer's ranking validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmf.data.splits import parse_split
from deepmf.data.synthetic import planted_interactions, synthetic_ratings
from deepmf.errors import ConfigError
from deepmf.evaluation.topk import HeldOutRanking
from deepmf.experiment import train_config_for
from deepmf.models import ease as ease_module
from deepmf.models.registry import create_model
from deepmf.training.fit import train_model

# Small settings that learn the planted data in a second or two on one thread.
DEEP = ({"factors": 8, "layers": [16]}, {"epochs": 15, "patience": 0, "batch_size": 512, "lr": 0.01})
SPECS = {
    "pop": ({}, {}),
    "ease": ({"reg": 10.0}, {}),
    "ials": ({"factors": 16}, {"epochs": 10}),
    "bpr": ({"factors": 16}, {"epochs": 40, "patience": 0, "lr": 0.05, "l2": 0.001}),
    "neumf": DEEP,
    "deepmf": DEEP,
}


@pytest.fixture(scope="module")
def planted():
    data = planted_interactions()
    return data, parse_split("user:0.2", data, seed=0)[0]


def _fit(name: str, data, train, valid=None, **train_overrides):
    model_options, train_options = SPECS[name]
    config = train_config_for(name, {**train_options, "threads": 1, "device": "cpu", **train_overrides}, "implicit")
    return train_model(name, data, train, valid, model_options, config, progress=False)


@pytest.fixture(scope="module")
def fitted(planted):
    data, split = planted
    return {name: _fit(name, data, split.train) for name in SPECS}


@pytest.mark.parametrize("name", [n for n in SPECS if n != "pop"])
def test_each_model_learns_the_planted_groups_far_better_than_popularity(planted, fitted, name: str) -> None:
    _, split = planted
    ranking = HeldOutRanking(split.train, split.test, 10)
    pop, model = ranking(fitted["pop"].model), ranking(fitted[name].model)
    # Items are about equally popular, so popularity finds ~10 % of the held-out items; the groups give ~70 %.
    assert pop["recall"] < 0.15
    assert model["recall"] > 0.5 and model["ndcg"] > 3 * pop["ndcg"]


def test_scores_are_scores_not_ratings(fitted) -> None:
    for name, trained in fitted.items():
        assert trained.model.output_kind == "score", name


def test_ials_fold_in_is_the_trained_user_row(planted) -> None:
    data, split = planted
    # With K conjugate-gradient steps CG solves a K x K system exactly, so each user's row is the exact
    # solution against the final item factors (users are solved last), which fold_in_user recomputes.
    config = train_config_for("ials", {"epochs": 3, "threads": 1})
    trained = train_model("ials", data, split.train, None, {"factors": 8, "cg_steps": 8}, config, progress=False)
    model, train = trained.model, split.train
    for user in (0, 7, 42):
        items = train.items[train.users == user]
        folded = model.fold_in_user(torch.from_numpy(items.astype(np.int64)))
        np.testing.assert_allclose(folded.numpy(), model.user_factors.weight[user].numpy(), rtol=1e-3, atol=1e-4)
    assert torch.equal(model.fold_in_user([]), torch.zeros(8))


def test_ials_fold_in_weights_are_confidence(planted) -> None:
    data, split = planted
    config = train_config_for("ials", {"epochs": 2, "threads": 1})
    trained = train_model("ials", data, split.train, None, {"factors": 8, "alpha": 2.0}, config, progress=False)
    items = torch.tensor([1, 6, 11])
    heavy = trained.model.fold_in_user(items, torch.tensor([5.0, 1.0, 1.0]))
    light = trained.model.fold_in_user(items)
    scores = trained.model.score_user_vectors(torch.stack([heavy, light]))
    assert scores[0, 1] - scores[1, 1] > 0  # more events of item 1 make the user like it more
    with pytest.raises(ConfigError, match="once"):
        trained.model.fold_in_user([1, 1])
    with pytest.raises(ConfigError, match=r"0\.\."):
        trained.model.fold_in_user([data.n_items])


def test_ease_fold_in_scores_equal_the_training_users_scores(planted, fitted) -> None:
    _, split = planted
    model = fitted["ease"].model
    users = torch.arange(5)
    rows = torch.stack([model.fold_in_user(torch.from_numpy(split.train.items[split.train.users == u]))
                        for u in range(5)])
    torch.testing.assert_close(model.score_user_vectors(rows), model.score_all_items(users))


def test_ease_by_hand_on_a_tiny_matrix() -> None:
    # Three users x three items; B = -P / diag(P) with P = (X^T X + reg I)^-1, zero diagonal.
    x = np.array([[1, 1, 0], [1, 0, 1], [0, 1, 1]], dtype=np.float64)
    data = _interactions(x)
    trained = train_model("ease", data, data, None, {"reg": 2.0}, train_config_for("ease"), progress=False)
    p = np.linalg.inv(x.T @ x + 2.0 * np.eye(3))
    b = -p / np.diag(p)
    np.fill_diagonal(b, 0.0)
    np.testing.assert_allclose(trained.model.weights.numpy(), b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(trained.model.score_all_items(torch.arange(3)).numpy(), x @ b, rtol=1e-5, atol=1e-6)


def test_ease_refuses_a_catalogue_too_large_for_memory(planted, monkeypatch: pytest.MonkeyPatch) -> None:
    _, split = planted
    monkeypatch.setattr(ease_module, "available_memory_bytes", lambda: 1000)
    with pytest.raises(ConfigError, match=r"ease needs 0\.0 GiB .* 100 x 100 item-item matrices"):
        create_model("ease", split.train)
    assert ease_module.ease_memory_bytes(60_000) == 3 * 4 * 60_000**2


def test_bpr_fold_in_recommends_the_users_group(planted, fitted) -> None:
    data, split = planted
    model = fitted["bpr"].model
    groups = data.meta["groups"][1]
    hits = []
    for user in range(0, 40, 4):
        items = split.train.items[split.train.users == user]
        scores = model.score_user_vectors(model.fold_in_user(torch.from_numpy(items.astype(np.int64)))[None])[0]
        scores[torch.from_numpy(items.astype(np.int64))] = -np.inf
        top = torch.topk(scores, 5).indices.numpy()
        hits.append(np.mean(groups[top] == data.meta["groups"][0][user]))
    assert np.mean(hits) > 0.8  # folded-in users get their own group's items (chance: 0.2)


def test_pop_fold_in_is_the_popularity_list(fitted) -> None:
    model = fitted["pop"].model
    vector = model.fold_in_user([0, 3])
    assert vector.shape == (0,)
    torch.testing.assert_close(model.score_user_vectors(vector[None]), model.popularity[None])


def test_models_refuse_the_other_feedback(planted) -> None:
    data, _ = planted
    explicit = synthetic_ratings("lowrank", n_users=10, n_items=10, n_observed=50)
    for name in ("bpr", "ials", "ease", "pop"):
        with pytest.raises(ConfigError, match="--feedback implicit"):
            create_model(name, explicit)
    for name in ("mf", "svdpp", "bayes", "autorec", "blend"):
        with pytest.raises(ConfigError, match="learns explicit ratings"):
            create_model(name, data)
    with pytest.raises(ConfigError, match="add --feedback implicit"):
        create_model("neumf", explicit, loss="bce")
    with pytest.raises(ConfigError, match="use loss bce"):
        create_model("deepmf", data, loss="rating")
    assert create_model("neumf", data).config.loss == "bce"


def test_engines_refuse_options_they_cannot_honour(planted) -> None:
    data, split = planted
    # The engine option table (deepmf.training.engines.ENGINES) refuses them before any engine is built.
    cases = [("ials", {"l2": 0.1}, "ials engine cannot honour l2=0.1"),
             ("ease", {"epochs": 3}, "closed engine cannot honour epochs=3"),
             ("pop", {"l2": 0.1}, "closed engine cannot honour l2=0.1"),
             ("ials", {"negatives": 2}, "ials engine cannot honour negatives=2"),
             ("bpr", {"weight_decay": 0.1}, "bpr engine cannot honour weight_decay=0.1")]
    for name, options, message in cases:
        with pytest.raises(ConfigError, match=message):
            _fit(name, data, split.train, **options)


def test_bpr_is_reproducible_on_one_thread(planted) -> None:
    data, split = planted
    first, second = (_fit("bpr", data, split.train, epochs=3).model for _ in range(2))
    assert torch.equal(first.user_factors.weight, second.user_factors.weight)


def test_trainer_validates_by_ranking_and_stops_early(planted) -> None:
    data, split = planted
    trained = _fit("bpr", data, split.train, split.test, epochs=40, patience=2, lr=0.3)
    history = trained.result.history
    assert all(r.val_ndcg is not None and r.val_rmse is None and r.train_rmse is None for r in history)
    assert all(r.train_loss is not None and r.train_loss > 0 for r in history)
    best = max(history, key=lambda r: r.val_ndcg)
    assert trained.result.best_epoch == best.epoch
    ranking = HeldOutRanking(split.train, split.test, 10)
    # The best epoch's weights were restored: the model scores the best validation NDCG again.
    assert ranking(trained.model)["ndcg"] == pytest.approx(best.val_ndcg)


def _interactions(matrix: np.ndarray):
    from deepmf.data.idmap import IdMap
    from deepmf.data.implicit import to_implicit
    from deepmf.data.ratings import Ratings, RatingScale

    users, items = np.nonzero(matrix)
    events = Ratings(users.astype(np.int32), items.astype(np.int32), np.ones(len(users), dtype=np.float32),
                     IdMap(np.arange(matrix.shape[0]), "int", "user"), IdMap(np.arange(matrix.shape[1]), "int", "item"),
                     RatingScale(0, 1, 1))
    return to_implicit(events)


class Crash(Exception):
    """Stands in for a process dying between epochs."""


@pytest.mark.parametrize("name", ["bpr", "neumf", "ials"])
def test_resume_after_a_crash_gives_the_uninterrupted_model(planted, tmp_path, name: str) -> None:
    data, split = planted
    overrides = {"epochs": 4, "patience": 0}
    reference = _fit(name, data, split.train, split.test, **overrides)

    def crash_after_two(record) -> None:
        if record.epoch == 2:
            raise Crash

    folder = tmp_path / "checkpoint"
    model_options, train_options = SPECS[name]
    config = train_config_for(name, {**train_options, "threads": 1, "device": "cpu", **overrides}, "implicit")
    with pytest.raises(Crash):
        train_model(name, data, split.train, split.test, model_options, config, checkpoint_dir=folder,
                    on_epoch=crash_after_two, progress=False)
    resumed = train_model(name, data, split.train, split.test, model_options, config, checkpoint_dir=folder,
                          resume=True, progress=False)
    assert resumed.result.resumed_from == 2
    state, expected = resumed.model.state_dict(), reference.model.state_dict()
    assert all(torch.equal(state[key], expected[key]) for key in expected)
    assert [r.val_ndcg for r in resumed.result.history] == [r.val_ndcg for r in reference.result.history]
