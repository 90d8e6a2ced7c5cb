"""I-AutoRec: the hand-written full-batch gradient equals autograd's, the encoder reads the stored ratings,
and the model learns a small low-rank data set."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepmf.data.splits import random_split
from deepmf.data.synthetic import synthetic_ratings
from deepmf.errors import ConfigError
from deepmf.experiment import run_experiment, train_config_for
from deepmf.models.autorec import AutoRec
from deepmf.models.registry import create_model, model_from_config
from deepmf.training.config import TrainConfig
from deepmf.training.engines import autorec as autorec_engine
from deepmf.training.engines.autorec import AutoRecEngine


@pytest.fixture(scope="module")
def lowrank():
    return synthetic_ratings("lowrank", n_users=60, n_items=50, rank=2, n_observed=1500, noise=0.1, seed=3)


def test_encoder_is_sigmoid_of_the_dense_rating_matrix_times_weights(lowrank) -> None:
    model = AutoRec.from_data(lowrank, hidden=7)
    dense = torch.zeros(lowrank.n_items, lowrank.n_users)
    rows = torch.from_numpy(lowrank.items.astype(np.int64))
    dense[rows, torch.from_numpy(lowrank.users.astype(np.int64))] = torch.from_numpy(lowrank.ratings)
    expected = torch.sigmoid(dense @ model.encoder.weight + model.encoder_bias)
    torch.testing.assert_close(model.encode(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("block_entries", [1 << 24, 97])  # one block, and many blocks of one item
def test_hand_written_gradient_equals_autograd(lowrank, monkeypatch: pytest.MonkeyPatch,
                                               block_entries: int) -> None:
    monkeypatch.setattr(autorec_engine, "BLOCK_ENTRIES", block_entries)
    torch.manual_seed(0)
    model = AutoRec.from_data(lowrank, hidden=6, init_std=0.3)
    l2 = 3.0
    engine = AutoRecEngine(model, lowrank, TrainConfig(lr=0.01, l2=l2), torch.device("cpu"))
    engine.compute_gradients()
    manual = {name: p.grad.clone() for name, p in model.named_parameters()}

    model.zero_grad(set_to_none=True)
    users = torch.from_numpy(lowrank.users.astype(np.int64))
    items = torch.from_numpy(lowrank.items.astype(np.int64))
    loss = (model(users, items) - torch.from_numpy(lowrank.ratings)).pow(2).sum()
    loss = loss + 0.5 * l2 * (model.encoder.weight.pow(2).sum() + model.decoder.weight.pow(2).sum())
    loss.backward()
    for name, parameter in model.named_parameters():
        torch.testing.assert_close(manual[name], parameter.grad, rtol=1e-4, atol=1e-4, msg=name)


def test_codes_of_some_items_are_those_rows_of_all_codes(lowrank) -> None:
    model = AutoRec.from_data(lowrank, hidden=5)
    items = torch.tensor([4, 0, 4, 49, 17])
    torch.testing.assert_close(model.item_vectors(items), model.encode()[items])


def test_learns_a_low_rank_matrix(lowrank) -> None:
    split = random_split(lowrank, 0.2, seed=0)
    config = train_config_for("autorec", {"epochs": 80, "patience": 10, "l2": 1.0, "threads": 1})
    result = run_experiment(lowrank, split, "autorec", {"hidden": 50}, config, progress=False)
    # Measured 0.248..0.284 over seeds 0..4 (noise floor 0.1); the test ratings' std is 1.57, biases-only 1.64
    # (bench/bounds.py --only autorec).
    assert result.metrics["rmse"] < 0.35


def test_rebuilds_from_its_config(lowrank) -> None:
    model = create_model("autorec", lowrank, hidden=4)
    rebuilt = model_from_config("autorec", model.config_dict())
    rebuilt.load_state_dict(model.state_dict())
    users, items = torch.arange(10), torch.arange(10)
    torch.testing.assert_close(rebuilt.eval().predict(users, items), model.eval().predict(users, items))


def test_refuses_other_models(lowrank) -> None:
    with pytest.raises(ConfigError):
        AutoRecEngine(create_model("mf", lowrank), lowrank, TrainConfig(), torch.device("cpu"))
