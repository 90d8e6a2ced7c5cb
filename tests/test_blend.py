"""Blend: ridge weights are the least-squares ones, the blend never reads test ratings, members are checked,
and a blend rebuilds from its config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmf.data.splits import make_split, random_split
from deepmf.errors import ConfigError
from deepmf.experiment import run_experiment, train_config_for
from deepmf.models.blend import Blend
from deepmf.models.registry import create_model, model_from_config
from deepmf.testing.conformance import conformance_data
from deepmf.training.engines.blend import ridge_weights

# Two quick members: biased MF by the numba engine and SVD++, a few epochs each.
MEMBERS = {"members": "mf,svdpp", "member_options": {"mf": {"factors": 4}, "svdpp": {"factors": 4}},
           "member_train": {"mf": {"epochs": 15, "patience": 3}, "svdpp": {"epochs": 15, "patience": 3}}}


def test_ridge_weights_recover_an_exact_linear_blend() -> None:
    x = np.random.default_rng(0).normal(size=(200, 2))
    y = 0.5 + 0.3 * x[:, 0] + 0.7 * x[:, 1]
    weights, intercept = ridge_weights(x, y, penalty=0.0)
    np.testing.assert_allclose(weights, [0.3, 0.7], atol=1e-10)
    assert intercept == pytest.approx(0.5, abs=1e-10)
    shrunk, shrunk_intercept = ridge_weights(x, y, penalty=1e9)
    assert np.abs(shrunk).max() < 1e-5
    assert shrunk_intercept == pytest.approx(y.mean(), abs=1e-4)


@pytest.fixture(scope="module")
def data():
    return conformance_data()


def _fit_weights(data, split) -> torch.Tensor:
    config = train_config_for("blend", {"seed": 3, "threads": 1})  # one Hogwild! thread: reproducible
    result = run_experiment(data, split, "blend", MEMBERS, config, progress=False)
    return result.recommender.model.weights.detach().clone()


def test_weights_do_not_depend_on_test_ratings(data) -> None:
    split = random_split(data, 0.2, seed=0)
    hidden = make_split(split.train, split.test.with_ratings(np.full(len(split.test), data.scale.minimum)), split.name)
    real, blind = _fit_weights(data, split), _fit_weights(data, hidden)
    assert torch.isfinite(real).all()
    torch.testing.assert_close(blind, real, rtol=0, atol=0)


def test_rebuilds_from_its_config(data) -> None:
    blend = create_model("blend:mf,svdpp", data)
    assert isinstance(blend, Blend) and blend.config.members == ["mf", "svdpp"]
    blend.set_weights(torch.tensor([0.25, 0.5]), 0.75)
    rebuilt = model_from_config("blend", blend.config_dict())
    rebuilt.load_state_dict(blend.state_dict())
    users, items = torch.arange(20), torch.arange(20) % data.n_items
    torch.testing.assert_close(rebuilt.eval().predict(users, items), blend.eval().predict(users, items))
    # The blend is the weighted sum of its members' clipped predictions plus the intercept.
    members = [m.predict(users, items).clamp(1, 5) for m in blend.members]
    torch.testing.assert_close(blend.predict(users, items), 0.75 + 0.25 * members[0] + 0.5 * members[1])


def test_tagged_members_are_second_copies_with_their_own_options(data) -> None:
    blend = create_model("blend:bayes,bayes#wide", data, member_options={"bayes#wide": {"rank": 6}})
    assert blend.config.members == ["bayes", "bayes#wide"]
    assert [m.name for m in blend.members] == ["bayes", "bayes"]
    assert [m.config.rank for m in blend.members] == [10, 6]
    rebuilt = model_from_config("blend", blend.config_dict())
    assert [m.config.rank for m in rebuilt.members] == [10, 6]
    default = create_model("blend", data)
    assert "bayes#r16" in default.config.members
    assert default.members[default.config.members.index("bayes#r16")].config.rank == 16


@pytest.mark.parametrize("members", ["", "mf,mf", "mf,nosuch", "mf,blend", "mf,blend#x", "nosuch#x", "mf,mf#"])
def test_refuses_bad_member_lists(data, members: str) -> None:
    with pytest.raises(ConfigError):
        create_model(f"blend:{members}" if members else "blend", data, members=members)


def test_refuses_options_for_non_members_and_member_lists_on_other_models(data) -> None:
    with pytest.raises(ConfigError, match="not blend members"):
        create_model("blend:mf", data, member_options={"svdpp": {}})
    with pytest.raises(ConfigError, match="only blend"):
        create_model("mf:svdpp", data)
