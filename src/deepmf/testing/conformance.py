"""Behaviour every model kind must show once wrapped in a Recommender (after LensKit's ``testing``).

Subclass ``RecommenderConformance`` in a test module (the class name must start with ``Test`` for pytest to
collect it) and set ``model_name`` and, for speed, ``model_options`` / ``train_options``; or override the
``model_spec`` fixture to parametrize over several models. The model is trained once per class on a small
low-rank data set with titles and genres, then checked: save/load gives identical answers, all-item scoring
agrees with pairwise prediction, recommendations exclude seen items and follow the scores, unknown ids raise
or fall back visibly, similar items exclude the item itself and are symmetric, and the model beats a trivial
baseline.

Models of implicit feedback (those that learn nothing else, and deep models with ``loss="bce"``) are checked
on implicit data with a planted group structure, split per user; their trivial baseline is the popularity
ranking, which they must beat by NDCG on the test interactions.

This module needs pytest (a test dependency); the package never imports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from deepmf.data.ratings import ItemTable, Ratings
from deepmf.data.splits import Split, parse_split
from deepmf.data.synthetic import planted_interactions, synthetic_ratings
from deepmf.errors import ConfigError, UnknownIdError
from deepmf.experiment import ExperimentResult, run_experiment, train_config_for
from deepmf.recommender import Recommender


@dataclass(frozen=True)
class ModelSpec:
    """A model to check: registry name, model options, training option overrides."""

    name: str
    options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)


def conformance_data(seed: int = 0) -> Ratings:
    """A small 1..5-star data set with low-rank structure, timestamps, titles and three genres.

    Low-rank values (rank 3) are cut into five equally populated star levels, so every model has something
    to learn and the classification head has discrete classes.
    """
    raw = synthetic_ratings("lowrank", n_users=80, n_items=60, rank=3, n_observed=2400, noise=0.3, seed=seed)
    stars = 1 + np.searchsorted(np.quantile(raw.ratings, [0.2, 0.4, 0.6, 0.8]), raw.ratings).astype(
        np.float32
    )
    frame = pd.DataFrame(
        {
            "user": raw.user_ids.raw(raw.users),
            "item": raw.item_ids.raw(raw.items),
            "rating": stars,
            "timestamp": np.random.default_rng(seed).integers(8.8e8, 9.2e8, len(stars)),
        }
    )
    data = Ratings.from_frame(frame, time_col="timestamp", name="conformance")
    genres = np.eye(3, dtype=bool)[np.arange(data.n_items) % 3]
    titles = np.array([f"Item {i}" for i in data.item_ids.raw(np.arange(data.n_items))], dtype=object)
    return Ratings(
        data.users,
        data.items,
        data.ratings,
        data.user_ids,
        data.item_ids,
        data.scale,
        timestamps=data.timestamps,
        name="conformance",
        item_table=ItemTable(titles, genres, ("Drama", "Comedy", "Horror")),
    )


def implicit_conformance_data(seed: int = 0) -> Ratings:
    """Implicit feedback on 80 users x 60 items in 4 planted taste groups, with titles and three genres."""
    data = planted_interactions(n_users=80, n_items=60, n_groups=4, per_user=10, seed=seed)
    genres = np.eye(3, dtype=bool)[np.arange(data.n_items) % 3]
    titles = np.array([f"Item {i}" for i in data.item_ids.raw(np.arange(data.n_items))], dtype=object)
    return replace(data, item_table=ItemTable(titles, genres, ("Drama", "Comedy", "Horror")), name="conformance")


def learns_implicit(spec: ModelSpec) -> bool:
    """Whether the spec's model is trained on implicit feedback (it learns nothing else, or loss bce)."""
    from deepmf.models.registry import model_class

    return "explicit" not in model_class(spec.name).feedbacks or spec.options.get("loss") == "bce"


@dataclass
class Fitted:
    data: Ratings
    split: Split
    result: ExperimentResult
    folder: Path

    @property
    def recommender(self) -> Recommender:
        return self.result.recommender


class RecommenderConformance:
    """Mixin of conformance tests; see the module docstring."""

    model_name: str = "mf"
    model_options: dict[str, Any] = {}  # noqa: RUF012 - read-only class defaults, overridden per subclass
    train_options: dict[str, Any] = {}  # noqa: RUF012

    @pytest.fixture(scope="class")
    @classmethod
    def model_spec(cls) -> ModelSpec:
        return ModelSpec(cls.model_name, dict(cls.model_options), dict(cls.train_options))

    @pytest.fixture(scope="class")
    @classmethod
    def fitted(cls, model_spec: ModelSpec, tmp_path_factory: pytest.TempPathFactory) -> Fitted:
        implicit = learns_implicit(model_spec)
        data = implicit_conformance_data() if implicit else conformance_data()
        split = parse_split("user:0.2" if implicit else "random:0.2", data, seed=0)[0]
        config = train_config_for(model_spec.name, {"device": "cpu", **model_spec.train}, data.feedback)
        result = run_experiment(data, split, model_spec.name, model_spec.options, config, progress=False)
        folder = result.recommender.save(tmp_path_factory.mktemp(model_spec.name.replace(":", "_")) / "model")
        return Fitted(data, split, result, folder)

    # ---- save / load ---------------------------------------------------------------------------------------
    def test_save_load_gives_identical_answers(self, fitted: Fitted) -> None:
        rec, loaded = fitted.recommender, Recommender.load(fitted.folder)
        users = rec.user_ids.raw(np.arange(rec.n_users))
        items = rec.item_ids.raw(np.arange(rec.n_items))
        grid_u, grid_i = np.repeat(users, len(items)), np.tile(items, len(users))
        np.testing.assert_array_equal(
            loaded.predict_many(grid_u, grid_i, cold_start="bias"),
            rec.predict_many(grid_u, grid_i, cold_start="bias"),
        )
        pd.testing.assert_frame_equal(
            loaded.recommend_many(users[:10], n=5), rec.recommend_many(users[:10], n=5)
        )
        assert loaded.evaluation is not None
        assert loaded.evaluate(fitted.split.test).metrics == pytest.approx(rec.evaluation.metrics)

    # ---- scoring -------------------------------------------------------------------------------------------
    def test_all_item_scores_agree_with_pairwise_predictions(self, fitted: Fitted) -> None:
        model = fitted.recommender.model
        users = torch.arange(min(8, fitted.data.n_users))
        with torch.no_grad():
            scores = model.score_all_items(users)
            grid = model.predict(
                users.repeat_interleave(fitted.data.n_items),
                torch.arange(fitted.data.n_items).repeat(len(users)),
            )
        assert scores.shape == (len(users), fitted.data.n_items)
        np.testing.assert_allclose(scores.numpy(), grid.view(len(users), -1).numpy(), rtol=1e-4, atol=1e-4)

    def test_recommend_follows_the_scores_and_skips_seen(self, fitted: Fitted) -> None:
        rec = fitted.recommender
        seen_pairs = set(zip(rec.seen.user_of_each_rating().tolist(), rec.seen.items.tolist(), strict=True))
        trained_items = np.flatnonzero(rec.seen.item_counts() > 0)
        for user_index in range(0, rec.n_users, 9):
            user = rec.user_ids.raw(user_index)
            top = rec.recommend(user, n=5)
            candidates = [i for i in trained_items if (user_index, i) not in seen_pairs]
            scores = rec.predict_many([user] * len(candidates), rec.item_ids.raw(np.array(candidates)))
            assert not {(user_index, rec.item_ids.index(i)) for i in top["item"]} & seen_pairs
            # Scores are clipped predictions: the list must hold the best five scores.
            np.testing.assert_allclose(
                np.sort(top["score"].to_numpy())[::-1], np.sort(scores)[::-1][:5], rtol=1e-4, atol=1e-4
            )
            with_seen = rec.recommend(user, n=rec.n_items, exclude_seen=False)
            assert len(with_seen) == len(trained_items)

    def test_empty_inputs(self, fitted: Fitted) -> None:
        rec = fitted.recommender
        assert rec.predict_many([], []).shape == (0,)
        assert rec.recommend_many([], n=3).empty

    # ---- unknown ids ---------------------------------------------------------------------------------------
    def test_unknown_ids_raise_or_fall_back_visibly(self, fitted: Fitted) -> None:
        rec = fitted.recommender
        item = rec.item_ids.raw(int(np.argmax(rec.seen.item_counts())))
        with pytest.raises(UnknownIdError):
            rec.predict(-12345, item)
        with pytest.raises(UnknownIdError):
            rec.recommend(-12345)
        fallback = rec.predict(-12345, item, cold_start="bias")
        assert fallback.cold_start == "user"
        assert rec.scale.minimum <= fallback.prediction <= rec.scale.maximum
        with pytest.raises(ConfigError):
            rec.recommend(rec.user_ids.raw(0), n=0)

    # ---- similarity ----------------------------------------------------------------------------------------
    def test_similar_items_exclude_self_and_are_symmetric(self, fitted: Fitted) -> None:
        rec = fitted.recommender
        if rec.item_vectors() is None:
            pytest.skip(f"{rec.model_name} has no item embeddings")
        item = rec.item_ids.raw(int(np.argmax(rec.seen.item_counts())))
        similar = rec.similar_items(item, n=5)
        assert item not in similar["item"].tolist() and len(similar) == 5
        assert similar["score"].is_monotonic_decreasing
        other = similar["item"].iloc[0]
        back = rec.similar_items(other, n=rec.n_items).set_index("item")["score"]
        assert back.loc[item] == pytest.approx(similar["score"].iloc[0], abs=1e-5)

    # ---- accuracy ------------------------------------------------------------------------------------------
    def test_beats_the_trivial_baseline(self, fitted: Fitted) -> None:
        """Regression beats predicting the training mean; a classification head beats the majority class; an
        implicit-feedback model beats popularity (the baseline compare prints beside it) by test NDCG."""
        metrics = fitted.result.metrics
        test, train = fitted.split.test.ratings, fitted.split.train.ratings
        if fitted.recommender.scores_only:
            assert "rmse" not in metrics and metrics["protocol"] == "full"
            pop = run_experiment(fitted.data, fitted.split, "pop", progress=False).metrics
            if fitted.recommender.model_name != "pop":
                assert metrics["ndcg"] > pop["ndcg"] + 0.1
            return
        assert np.isfinite([metrics["rmse"], metrics["mae"], metrics["ndcg"]]).all()
        if fitted.recommender.model.head == "classification":
            values, counts = np.unique(train, return_counts=True)
            assert metrics["accuracy"] > float(np.mean(test == values[np.argmax(counts)]))
        else:
            assert metrics["rmse"] < float(np.sqrt(np.mean((test - train.mean()) ** 2)))
