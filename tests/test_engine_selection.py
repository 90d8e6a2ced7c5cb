"""Engine choice: explicit engines are checked, auto never picks an engine that would ignore an option."""

from __future__ import annotations

import pytest
import torch

from deepmf.data.synthetic import synthetic_ratings
from deepmf.errors import ConfigError
from deepmf.models.registry import create_model
from deepmf.training.config import TrainConfig
from deepmf.training.engines import select_engine

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return synthetic_ratings("lowrank", n_users=20, n_items=20, n_observed=200, seed=0)


def test_auto_picks_numba_for_biased_mf_on_cpu(data):
    assert select_engine(create_model("mf", data), TrainConfig(optimizer="sgd"), CPU) == "numba"


@pytest.mark.parametrize("config", [TrainConfig(optimizer="rmsprop"), TrainConfig(weight_decay=0.01)])
def test_auto_falls_back_to_torch_when_numba_would_ignore_an_option(data, config):
    assert select_engine(create_model("mf", data), config, CPU) == "torch"


def test_sigmoid_mf_is_torch_only(data):
    model = create_model("mf", data, sigmoid=True)
    assert select_engine(model, TrainConfig(optimizer="sgd"), CPU) == "torch"
    with pytest.raises(ConfigError, match="cannot train"):
        select_engine(model, TrainConfig(engine="numba"), CPU)


def test_deep_model_refuses_numba(data):
    with pytest.raises(ConfigError, match="cannot train model 'deepmf'"):
        select_engine(create_model("deepmf", data), TrainConfig(engine="numba"), CPU)


def test_small_data_runs_on_one_thread_large_data_on_every_core(monkeypatch) -> None:
    import numba

    from deepmf import device

    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 4)
    assert device.default_cpu_threads(0) == 1
    assert device.default_cpu_threads(device.PARALLEL_FROM_RATINGS - 1) == 1
    assert device.default_cpu_threads(device.PARALLEL_FROM_RATINGS) == 4
