"""Trainer and torch engine: optimizers, schedules, determinism, early stopping, divergence."""

from __future__ import annotations

import pytest
import torch

from deepmf.data.splits import validation_split
from deepmf.data.synthetic import synthetic_ratings
from deepmf.errors import ConfigError
from deepmf.models import create_model
from deepmf.training.config import TrainConfig
from deepmf.training.engines.torch_engine import TorchEngine
from deepmf.training.fit import train_model
from deepmf.training.trainer import Trainer
from deepmf.training.validation import evaluate_rmse

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return synthetic_ratings("lowrank", n_users=60, n_items=50, rank=3, n_observed=2000, noise=0.1, seed=1)


@pytest.fixture(scope="module")
def parts(data):
    return validation_split(data, 0.1, seed=0)


def config(**overrides) -> TrainConfig:
    values = {"optimizer": "adam", "lr": 0.02, "batch_size": 128, "epochs": 3, "seed": 3, "threads": 1,
              "device": "cpu", "engine": "torch"}
    values.update(overrides)
    return TrainConfig(**values)


@pytest.mark.parametrize("optimizer, lr, sparse", [
    ("sgd", 0.05, False), ("sgd", 0.05, True), ("adam", 0.02, False), ("adamw", 0.02, False),
    ("rmsprop", 0.002, False), ("adagrad", 0.1, False), ("adagrad", 0.1, True), ("sparse_adam", 0.02, False),
])
def test_every_optimizer_lowers_the_training_error(data, parts, optimizer, lr, sparse) -> None:
    train, valid = parts
    momentum = {"momentum": 0.5} if optimizer in ("sgd", "rmsprop") else {}  # the others have no momentum
    trained = train_model("mf", data, train, valid, {"factors": 8},
                          config(optimizer=optimizer, lr=lr, sparse=sparse, **momentum), progress=False)
    history = trained.result.history
    assert [r.epoch for r in history] == [1, 2, 3]
    assert history[-1].train_rmse < history[0].train_rmse
    assert trained.result.engine == "torch"
    # Throughput counts the training ratings over the training pass alone, a part of the epoch's time.
    assert all(0 < len(train) / r.ratings_per_second <= r.seconds for r in history)
    assert trained.result.train_seconds == pytest.approx(sum(r.seconds for r in history))
    assert trained.result.ratings_per_second == pytest.approx(
        3 * len(train) / sum(len(train) / r.ratings_per_second for r in history))


def test_sparse_gradients_need_a_sparse_capable_optimizer(data, parts) -> None:
    with pytest.raises(ConfigError, match="sparse gradients"):
        train_model("mf", data, parts[0], None, {}, config(optimizer="adam", sparse=True), progress=False)


def test_sparse_adam_trains_dense_layers_with_adam_beside_it(data) -> None:
    model = create_model("deepmf", data, factors=4, layers=(8,))
    engine = TorchEngine(model, data, config(optimizer="sparse_adam"), CPU)
    kinds = [type(o).__name__ for o in engine.optimizers]
    assert kinds == ["SparseAdam", "Adam"]
    engine.train_epoch(1)
    assert model.user_embedding.weight.grad is None or model.user_embedding.weight.grad.is_sparse


@pytest.mark.parametrize("schedule, factor_after_3", [("step", 1e-3), ("cosine", 0.0), ("none", 1.0)])
def test_lr_schedules_change_the_rate_per_epoch(data, schedule, factor_after_3) -> None:
    model = create_model("mf", data, factors=4)
    engine = TorchEngine(model, data, config(lr_schedule=schedule), CPU)
    for epoch in (1, 2, 3):
        engine.train_epoch(epoch)
        engine.step_schedule(None)
    assert engine.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.02 * factor_after_3, abs=1e-12)


def test_plateau_schedule_halves_the_rate_when_validation_stalls(data) -> None:
    engine = TorchEngine(create_model("mf", data, factors=4), data, config(lr_schedule="plateau"), CPU)
    for val in (1.0, 1.0, 1.0):
        engine.step_schedule(val)
    assert engine.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.01)


def test_same_seed_same_weights_and_the_global_rng_is_left_alone(data, parts) -> None:
    train, valid = parts
    before = torch.get_rng_state()
    runs = [train_model("deepmf", data, train, valid, {"factors": 4, "layers": (8, 4), "dropout": 0.3},
                        config(), progress=False) for _ in range(2)]
    assert torch.equal(before, torch.get_rng_state())
    first, second = (r.model.state_dict() for r in runs)
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert runs[0].result.history[-1].val_rmse == runs[1].result.history[-1].val_rmse
    other = train_model("deepmf", data, train, valid, {"factors": 4, "layers": (8, 4), "dropout": 0.3},
                        config(seed=4), progress=False)
    assert not torch.equal(other.model.user_embedding.weight, runs[0].model.user_embedding.weight)


def test_early_stopping_restores_the_best_weights(data, parts) -> None:
    train, valid = parts
    # A large model at a high rate overfits 1,600 ratings within a few epochs.
    trained = train_model("mf", data, train, valid, {"factors": 40},
                          config(lr=0.1, epochs=30, patience=2, batch_size=64), progress=False)
    result = trained.result
    history = result.history
    assert result.stopped_early and result.epochs_run < 30
    best = min(history, key=lambda r: r.val_rmse)
    assert result.best_epoch == best.epoch == result.epochs_run - 2
    scale = data.scale
    assert evaluate_rmse(trained.model, valid.to(), scale.minimum, scale.maximum) == pytest.approx(
        best.val_rmse, abs=1e-6)


def test_a_diverging_run_is_a_config_error(data, parts) -> None:
    with pytest.raises(ConfigError, match="diverged"):
        train_model("mf", data, parts[0], None, {"factors": 8}, config(optimizer="sgd", lr=1e6),
                    progress=False)


def test_without_validation_the_last_epoch_is_best_and_history_has_no_val(data) -> None:
    trained = train_model("mf", data, data, None, {"factors": 4}, config(epochs=2), progress=False)
    assert trained.result.best_epoch == 2
    assert [r.val_rmse for r in trained.result.history] == [None, None]


def test_evaluate_rmse_clips_to_the_scale_and_is_batch_size_blind(data) -> None:
    model = create_model("mf", data, factors=4, bias=False, init_std=3.0).eval()
    tensors = data.to()
    low, high = data.scale.minimum, data.scale.maximum
    predicted = model.predict(tensors.users, tensors.items).clamp(low, high)
    expected = float(((predicted - tensors.ratings).double() ** 2).mean().sqrt())
    assert evaluate_rmse(model, tensors, low, high, batch_size=7) == pytest.approx(expected, rel=1e-6)
    assert evaluate_rmse(model, tensors, low, high) == pytest.approx(expected, rel=1e-6)


def test_resume_needs_a_checkpoint_folder() -> None:
    with pytest.raises(ConfigError, match="checkpoint folder"):
        Trainer(config(), resume=True)


def test_train_model_refuses_training_data_from_another_data_set(data) -> None:
    other = synthetic_ratings("lowrank", n_users=60, n_items=50, n_observed=500, seed=2)
    with pytest.raises(ConfigError, match="split of the full data"):
        train_model("mf", data, other, None, {}, config(), progress=False)
