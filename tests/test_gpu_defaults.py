"""Device-sized defaults of the torch engine (``gpu_batch_scaling``): the batch follows the data on CUDA only,
the learning rate follows the batch with a linear warm-up, and CPU behaviour is unchanged.

Device: the rule is a pure function of (config, size, device) and the warm-up is exercised on the CPU by
handing the engine the rule's CUDA answer; nothing here needs a GPU.
"""

from __future__ import annotations

import pytest
import torch

from deepmf.data.synthetic import synthetic_ratings
from deepmf.experiment import train_config_for
from deepmf.models.registry import create_model
from deepmf.training.config import TrainConfig
from deepmf.training.engines import torch_engine
from deepmf.training.engines.torch_engine import GPU_MAX_BATCH, TorchEngine, device_batch

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


@pytest.mark.parametrize("model", ["deepmf", "neumf"])
def test_deep_models_scale_on_cuda_only(model: str) -> None:
    config = train_config_for(model)
    assert config.gpu_batch_scaling
    assert device_batch(config, 20_000_000, CPU) == (4096, 1.0, 0)  # the CPU keeps its tuned settings
    assert device_batch(config, 76_000, CUDA) == (4096, 1.0, 0)  # ML-100K: too small to grow
    batch, factor, warmup = device_batch(config, 18_000_000, CUDA)
    assert batch == GPU_MAX_BATCH and factor == pytest.approx(4.0) and warmup == -(-18_000_000 // batch)


def test_batch_grows_to_a_power_of_two_between_the_configured_and_the_cap() -> None:
    config = TrainConfig(batch_size=1000, gpu_batch_scaling=True)
    assert device_batch(config, 1_000_000, CUDA)[0] == 2048  # 1M / 256 = 3906 -> 2048
    assert device_batch(TrainConfig(batch_size=1 << 17, gpu_batch_scaling=True), 10**9, CUDA)[0] == 1 << 17
    assert device_batch(TrainConfig(batch_size=64), 10**9, CUDA) == (64, 1.0, 0)  # off unless asked for


def test_warm_up_ramps_the_scaled_rate_over_the_first_epoch(monkeypatch) -> None:
    data = synthetic_ratings("lowrank", n_users=30, n_items=30, rank=2, n_observed=512, seed=0)
    monkeypatch.setattr(torch_engine, "device_batch", lambda config, n, device: (64, 2.0, 4))
    config = TrainConfig(optimizer="sgd", lr=0.01, momentum=0.0, epochs=2)
    engine = TorchEngine(create_model("deepmf", data, factors=4, layers=[8]), data, config, CPU)
    assert engine.effective_options == {"batch_size": 64, "lr": 0.02, "warmup_steps": 4}
    seen = []
    step = engine.optimizers[0].step

    def recording_step(*args, **kwargs):
        seen.append(engine.optimizers[0].param_groups[0]["lr"])
        return step(*args, **kwargs)

    monkeypatch.setattr(engine.optimizers[0], "step", recording_step)
    engine.train_epoch(1)
    engine.train_epoch(2)
    assert seen == pytest.approx([0.005, 0.01, 0.015, 0.02] + [0.02] * 12)
    assert engine.state_dict()["steps"] == 16


def test_cpu_training_is_unchanged(monkeypatch) -> None:
    data = synthetic_ratings("lowrank", n_users=20, n_items=20, rank=2, n_observed=200, seed=0)
    engine = TorchEngine(create_model("deepmf", data, factors=4), data, train_config_for("deepmf"), CPU)
    assert engine.effective_options == {"batch_size": 4096, "lr": 0.01, "warmup_steps": 0}
    assert engine.optimizers[0].param_groups[0]["lr"] == 0.01
