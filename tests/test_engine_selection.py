"""Engine choice: explicit engines are checked, auto never picks an engine that would ignore an option."""

from __future__ import annotations

import pytest
import torch

from deepmf import device
from deepmf.data.synthetic import synthetic_ratings
from deepmf.errors import ConfigError
from deepmf.models.registry import create_model
from deepmf.training.config import TrainConfig
from deepmf.training.engines import place, select_engine

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

    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 4)
    assert device.default_cpu_threads(0) == 1
    assert device.default_cpu_threads(device.PARALLEL_FROM_RATINGS - 1) == 1
    assert device.default_cpu_threads(device.PARALLEL_FROM_RATINGS) == 4


# ---- place(): the device and engine "auto" gives, as on a CUDA machine (CUDA faked: nothing runs there) ------
@pytest.fixture()
def cuda_present(monkeypatch):
    """A machine with CUDA, as far as ``place`` can tell, and no device forced by the environment."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("DEEPMF_DEVICE", raising=False)


def test_auto_keeps_small_mf_on_the_numba_cpu_engine_and_sends_large_mf_to_cuda_sgd(data, cuda_present):
    mf = create_model("mf", data)
    config = TrainConfig(optimizer="sgd")
    threshold = device.GPU_FROM_RATINGS[("cuda-sgd", "numba")]
    assert place(mf, config, threshold - 1) == (torch.device("cpu"), "numba")
    assert place(mf, config, threshold) == (torch.device("cuda"), "cuda-sgd")


def test_auto_sends_deep_models_to_the_gpu_at_any_size(data, cuda_present):
    assert place(create_model("deepmf", data), TrainConfig(), 100) == (torch.device("cuda"), "torch")


def test_auto_bayes_uses_the_torch_sampler_on_the_gpu_from_its_threshold(data, cuda_present):
    bayes = create_model("bayes", data)
    threshold = device.GPU_FROM_RATINGS[("gibbs-torch", "gibbs")]
    assert place(bayes, TrainConfig(), threshold - 1) == (torch.device("cpu"), "gibbs")
    assert place(bayes, TrainConfig(), threshold) == (torch.device("cuda"), "gibbs-torch")


def test_a_named_engine_decides_the_device_under_auto(data, cuda_present):
    mf = create_model("mf", data)
    assert place(mf, TrainConfig(engine="numba"), 10**9) == (torch.device("cpu"), "numba")
    assert place(mf, TrainConfig(engine="cuda-sgd"), 10) == (torch.device("cuda"), "cuda-sgd")


def test_a_named_device_is_used_as_given(data, cuda_present, monkeypatch):
    mf = create_model("mf", data)
    assert place(mf, TrainConfig(device="cpu"), 10**9) == (torch.device("cpu"), "numba")
    assert place(mf, TrainConfig(device="cuda"), 10) == (torch.device("cuda"), "cuda-sgd")
    monkeypatch.setenv("DEEPMF_DEVICE", "cpu")
    assert place(mf, TrainConfig(), 10**9) == (torch.device("cpu"), "numba")


def test_without_cuda_auto_is_the_cpu(data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("DEEPMF_DEVICE", raising=False)
    assert place(create_model("mf", data), TrainConfig(), 10**9) == (torch.device("cpu"), "numba")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        place(create_model("mf", data), TrainConfig(device="cuda"), 10)


def test_auto_keeps_svdpp_on_its_cpu_engine(data, cuda_present):
    # The torch engine on the GPU is no substitute (test RMSE 1.34 against 0.12 on test_svdpp's data).
    assert place(create_model("svdpp", data), TrainConfig(optimizer="sgd"), 10**9) == (torch.device("cpu"), "svdpp")


def test_cuda_sgd_is_skipped_for_more_factors_than_a_tile_holds(data):
    wide = create_model("mf", data, factors=300)
    assert select_engine(wide, TrainConfig(optimizer="sgd"), torch.device("cuda")) == "torch"
    assert select_engine(create_model("mf", data), TrainConfig(optimizer="sgd"), torch.device("cuda")) == "cuda-sgd"
