"""Time-aware scoring end to end, and the default validation carve.

A model that uses the day of a rating (``uses_time``: Bayesian MF with its date feature, a blend with such a
member) is scored by ``Recommender.evaluate`` / ``predict_many`` / ``predict_frame`` at the ratings' own
timestamps; other models ignore times. Validation is carved by default only when something uses it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepmf.data.ratings import Ratings
from deepmf.data.splits import make_split, random_split
from deepmf.errors import ConfigError
from deepmf.experiment import carve_validation, run_experiment, train_config_for
from deepmf.models.registry import create_model
from deepmf.plots import plot_learning_curves
from deepmf.testing.conformance import conformance_data

DAY = 86_400
BAYES = {"rank": 3, "samples": 10, "burn_in": 5}


@pytest.fixture(scope="module")
def dated() -> Ratings:
    """Ratings driven by the day: each user rates high on even days and low on odd days (plus noise)."""
    rng = np.random.default_rng(0)
    n_users, n_items, n = 30, 25, 1500
    users, items = rng.integers(0, n_users, n), rng.integers(0, n_items, n)
    days = rng.integers(0, 12, n)
    rating = np.clip(np.rint(np.where(days % 2 == 0, 4.5, 1.5) + rng.normal(0, 0.3, n)), 1, 5)
    frame = pd.DataFrame({"user": users, "item": items, "rating": rating,
                          "timestamp": 1_200_000_000 + days * DAY + 600})
    return Ratings.from_frame(frame.drop_duplicates(["user", "item"]), time_col="timestamp")


@pytest.fixture(scope="module")
def bayes_run(dated: Ratings):
    split = random_split(dated, 0.2, seed=0)
    config = train_config_for("bayes", {"epochs": 30})
    return split, run_experiment(dated, split, "bayes", BAYES, config, progress=False)


def _indices(ratings: Ratings) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return (torch.from_numpy(ratings.users.astype(np.int64)), torch.from_numpy(ratings.items.astype(np.int64)),
            torch.from_numpy(ratings.timestamps))


def test_base_models_ignore_time_and_bayes_uses_it_with_dates(dated: Ratings) -> None:
    mf = create_model("mf", dated, factors=3)
    users, items, times = _indices(dated.subset(np.arange(20)))
    assert not mf.uses_time
    torch.testing.assert_close(mf.eval().predict_at(users, items, times), mf.predict(users, items))
    assert create_model("bayes", dated).uses_time
    assert not create_model("bayes", dated, date=False).uses_time
    assert create_model("blend:mf,bayes", dated).uses_time
    assert not create_model("blend:mf,svdpp", dated).uses_time


def test_no_timestamps_means_predict(bayes_run) -> None:
    split, result = bayes_run
    model = result.recommender.model.eval()
    users, items, times = _indices(split.test)
    torch.testing.assert_close(model.predict_at(users, items, None), model.predict(users, items))
    assert not torch.allclose(model.predict_at(users, items, times), model.predict(users, items))
    carried = split.test.to("cpu", timestamps=True)
    assert torch.equal(carried.timestamps, times) and split.test.to("cpu").timestamps is None


def test_evaluate_scores_each_test_rating_at_its_time(bayes_run) -> None:
    split, result = bayes_run
    rec, test = result.recommender, split.test
    metrics = result.metrics
    assert metrics["scored_at_rating_time"] is True
    warm = (split.train.user_counts()[test.users] > 0) & (split.train.item_counts()[test.items] > 0)
    assert warm.all()  # every test pair is warm here, so each one goes through predict_at
    at_time = rec.model.predict_at(*_indices(test)).clamp(1, 5).numpy()
    assert metrics["rmse"] == pytest.approx(float(np.sqrt(np.mean((at_time - test.ratings) ** 2))), rel=1e-5)
    # Without times the user's days are averaged: on day-driven data that is far worse.
    timeless = rec.evaluate(test, use_time=False).metrics
    assert timeless["scored_at_rating_time"] is False
    assert metrics["rmse"] < 0.7 * timeless["rmse"]
    assert metrics["ndcg"] == timeless["ndcg"]  # ranking is time-free


def test_predict_many_and_frame_take_timestamps(bayes_run) -> None:
    split, result = bayes_run
    rec, test = result.recommender, split.test.subset(np.arange(30))
    raw_users, raw_items = rec.user_ids.raw(test.users), rec.item_ids.raw(test.items)
    expected = rec.model.predict_at(*_indices(test)).clamp(1, 5).numpy()
    np.testing.assert_allclose(rec.predict_many(raw_users, raw_items, timestamps=test.timestamps), expected,
                               rtol=1e-6)
    frame = pd.DataFrame({"user": raw_users, "item": raw_items})
    np.testing.assert_allclose(rec.predict_frame(frame, timestamps=test.timestamps)["prediction"], expected,
                               rtol=1e-6)
    timeless = rec.model.predict(*_indices(test)[:2]).clamp(1, 5).numpy()
    np.testing.assert_allclose(rec.predict_many(raw_users, raw_items), timeless, rtol=1e-6)
    with pytest.raises(ConfigError, match="timestamps"):
        rec.predict_many(raw_users, raw_items, timestamps=test.timestamps[:-1])


def test_blend_passes_timestamps_to_its_members(dated: Ratings) -> None:
    blend = create_model("blend:mf,bayes", dated, member_options={"bayes": BAYES}).eval()
    blend.set_weights(torch.tensor([0.25, 0.5]), 0.75)
    users, items, times = _indices(dated.subset(np.arange(40)))
    mf, bayes = blend.members
    bayes.add_sample(0, {name: np.full(getattr(bayes, name).weight.shape[0], 0.1 * k)
                         if name != "global_bias" else 3.0 for k, name in enumerate(bayes.averaged_tables)},
                     {name: np.random.default_rng(k).normal(size=(getattr(bayes, name).weight.shape[0], 3))
                      for k, name in enumerate(bayes.slot_tables)})
    expected = 0.75 + 0.25 * mf.predict(users, items).clamp(1, 5) + 0.5 * bayes.predict_at(users, items,
                                                                                           times).clamp(1, 5)
    torch.testing.assert_close(blend.predict_at(users, items, times), expected)
    assert not torch.allclose(blend.predict_at(users, items, times), blend.predict(users, items))


def test_time_aware_blend_weights_do_not_depend_on_test_ratings() -> None:
    data = conformance_data()  # has timestamps: the Bayesian member uses its date feature
    split = random_split(data, 0.2, seed=0)
    hidden_ratings = np.full(len(split.test), data.scale.minimum)  # any in-scale value: training never sees them
    hidden = make_split(split.train, split.test.with_ratings(hidden_ratings), split.name)
    options = {"members": "mf,bayes", "member_options": {"mf": {"factors": 4}, "bayes": BAYES},
               "member_train": {"mf": {"epochs": 10, "patience": 2}, "bayes": {"epochs": 15}}}
    config = train_config_for("blend", {"seed": 3, "threads": 1})  # one Hogwild! thread: reproducible
    weights = []
    for part in (split, hidden):
        result = run_experiment(data, part, "blend", options, config, progress=False)
        assert result.recommender.model.uses_time and result.n_valid == 0
        weights.append(result.recommender.model.weights.detach().clone())
    assert torch.isfinite(weights[0]).all()
    torch.testing.assert_close(weights[1], weights[0], rtol=0, atol=0)


def test_validation_is_carved_only_when_something_uses_it(dated: Ratings) -> None:
    stopping = train_config_for("mf", {"patience": 3})
    fit_part, valid = carve_validation(dated, None, stopping)
    assert valid is not None and len(valid) == pytest.approx(0.05 * len(dated), abs=1)
    assert len(fit_part) + len(valid) == len(dated)
    no_stopping = train_config_for("mf", {"patience": 0})
    assert carve_validation(dated, None, no_stopping) == (dated, None)
    assert carve_validation(dated, None, train_config_for("mf", {"patience": 0, "lr_schedule": "plateau"}))[1]
    assert len(carve_validation(dated, 0.1, no_stopping)[1]) == pytest.approx(0.1 * len(dated), abs=1)
    assert carve_validation(dated, 0, stopping) == (dated, None)
    with pytest.raises(ConfigError, match="fraction"):
        carve_validation(dated, 1.0, stopping)


def test_bayes_trains_on_every_training_rating_by_default(bayes_run, tmp_path: Path) -> None:
    split, result = bayes_run
    assert result.n_valid == 0 and result.n_train == len(split.train)
    history = result.to_dict()["history"]
    assert history and all(record["val_rmse"] is None for record in history)
    assert plot_learning_curves(history, tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(("flags", "carved"), [((), 0.05), (("--patience", "0"), 0.0),
                                               (("--patience", "0", "--val-fraction", "0.1"), 0.1)])
def test_cli_val_fraction_default_follows_patience(run, dated: Ratings, tmp_path: Path, flags,
                                                   carved: float) -> None:
    path = tmp_path / "ratings.csv"
    dated.to_frame().to_csv(path, index=False)
    code, out, _ = run("train", path, "--model", "mf", "--factors", "3", "--epochs", "2", "--threads", "1",
                       "--json", "--quiet", *flags)
    assert code == 0
    payload = json.loads(out)
    training_part = payload["n_train"] + payload["n_valid"]
    assert payload["n_valid"] == round(carved * training_part)


def test_trainer_validates_a_time_aware_model_at_the_ratings_times(dated: Ratings) -> None:
    from deepmf.training.trainer import Trainer

    split = random_split(dated, 0.2, seed=0)
    model = create_model("bayes", split.train, **BAYES)
    result = Trainer(train_config_for("bayes", {"epochs": 12}), progress=False).fit(model, split.train, split.test)
    users, items, times = _indices(split.test)
    model.eval()
    at_time = torch.sqrt(((model.predict_at(users, items, times).clamp(1, 5) - torch.from_numpy(
        split.test.ratings)) ** 2).mean())
    without = torch.sqrt(((model.predict(users, items).clamp(1, 5) - torch.from_numpy(split.test.ratings)) ** 2).mean())
    assert result.history[-1].val_rmse == pytest.approx(float(at_time), rel=1e-5)
    assert float(at_time) < float(without)  # the day drives these ratings: scoring without it is worse
