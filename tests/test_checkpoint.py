"""Checkpoints: state flattening, atomic folders, exact resume (in process and after SIGKILL), refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load_file

from deepmf.data.synthetic import synthetic_ratings
from deepmf.errors import ConfigError, ModelFormatError
from deepmf.training.checkpoint import flatten_state, load_checkpoint, save_checkpoint, unflatten_state
from deepmf.training.config import TrainConfig
from deepmf.training.fit import train_model


class Crash(Exception):
    """Stands in for a process dying between epochs."""


@pytest.fixture(scope="module")
def data():
    return synthetic_ratings("lowrank", n_users=40, n_items=30, rank=3, n_observed=900, noise=0.1, seed=5)


def config(**overrides) -> TrainConfig:
    values = {"optimizer": "adam", "lr": 0.01, "batch_size": 64, "epochs": 4, "seed": 7, "threads": 1,
              "device": "cpu", "engine": "torch", "lr_schedule": "cosine", "patience": 0}
    values.update(overrides)
    return TrainConfig(**values)


OPTIONS = {"factors": 4, "layers": (8, 4), "dropout": 0.3, "batchnorm": True}


def _states_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ---- flattening ------------------------------------------------------------------------------------------
scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
           | st.text(max_size=5))
tensors = st.lists(st.floats(-1e3, 1e3), min_size=0, max_size=4).map(torch.tensor)
nested = st.recursive(scalars | tensors, lambda inner: (
    st.lists(inner, max_size=3) | st.tuples(inner, inner)
    | st.dictionaries(st.integers(0, 9) | st.text(max_size=3), inner, max_size=3)), max_leaves=12)


def _same(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


@given(nested)
def test_flatten_then_json_then_unflatten_is_the_identity(state) -> None:
    structure, flat = flatten_state(state)
    assert _same(unflatten_state(json.loads(json.dumps(structure)), flat), state)


def test_optimizer_state_survives_the_folder_round_trip(tmp_path: Path) -> None:
    param = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.Adam([param], lr=0.1, betas=(0.8, 0.9))
    param.grad = torch.tensor([1.0, -2.0, 0.5])
    optimizer.step()
    save_checkpoint(tmp_path / "ck", info={"epoch": 1}, model_state={"w": param.detach()}, best_state=None,
                    state={"optimizer": optimizer.state_dict()})
    loaded = load_checkpoint(tmp_path / "ck")
    fresh = torch.optim.Adam([torch.nn.Parameter(torch.ones(3))], lr=0.5)
    fresh.load_state_dict(loaded.state["optimizer"])
    assert fresh.param_groups[0]["betas"] == (0.8, 0.9) and fresh.param_groups[0]["lr"] == 0.1
    moments = [o.state_dict()["state"][0]["exp_avg"] for o in (fresh, optimizer)]
    assert torch.equal(*moments)
    assert loaded.info["epoch"] == 1 and loaded.best_state is None
    assert not [p for p in (tmp_path).iterdir() if p.name.startswith(".")]  # no temp folders left behind


def test_damaged_or_foreign_folders_are_model_format_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match="not a deepmf checkpoint"):
        load_checkpoint(tmp_path)
    save_checkpoint(tmp_path / "ck", info={}, model_state={"w": torch.ones(2)}, best_state=None, state={})
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"\x00\x01truncated")
    with pytest.raises(ModelFormatError, match="damaged"):
        load_checkpoint(tmp_path / "ck")
    (tmp_path / "ck" / "state.json").write_text('{"format": "deepmf-checkpoint", "format_version": 99}')
    with pytest.raises(ModelFormatError, match="version"):
        load_checkpoint(tmp_path / "ck")


# ---- resume ----------------------------------------------------------------------------------------------
def test_resume_after_a_crash_gives_the_uninterrupted_weights(data, tmp_path: Path) -> None:
    train, valid = data.subset(slice(0, 800)), data.subset(slice(800, None))
    # No early stopping: the final weights are the fourth epoch's, not a restored copy.
    reference = train_model("deepmf", data, train, valid, OPTIONS, config(patience=0), progress=False)

    def crash_after_two(record) -> None:
        if record.epoch == 2:
            raise Crash

    folder = tmp_path / "checkpoint"
    with pytest.raises(Crash):
        train_model("deepmf", data, train, valid, OPTIONS, config(patience=0), checkpoint_dir=folder,
                    on_epoch=crash_after_two, progress=False)
    assert load_checkpoint(folder).info["epoch"] == 2
    resumed = train_model("deepmf", data, train, valid, OPTIONS, config(patience=0), checkpoint_dir=folder,
                          resume=True, progress=False)
    assert resumed.result.resumed_from == 2 and resumed.result.epochs_run == 4
    assert _states_equal(resumed.model.state_dict(), reference.model.state_dict())
    assert [r.val_rmse for r in resumed.result.history] == [r.val_rmse for r in reference.result.history]


def test_early_stopping_state_survives_a_crash(data, tmp_path: Path) -> None:
    train, valid = data.subset(slice(0, 800)), data.subset(slice(800, None))
    overfit = config(lr=0.1, epochs=30, patience=2, lr_schedule="none")
    reference = train_model("mf", data, train, valid, {"factors": 30}, overfit, progress=False)
    assert reference.result.stopped_early

    def crash_at_best(record) -> None:
        if record.epoch == reference.result.best_epoch + 1:
            raise Crash

    folder = tmp_path / "checkpoint"
    with pytest.raises(Crash):
        train_model("mf", data, train, valid, {"factors": 30}, overfit, checkpoint_dir=folder,
                    on_epoch=crash_at_best, progress=False)
    resumed = train_model("mf", data, train, valid, {"factors": 30}, overfit, checkpoint_dir=folder,
                          resume=True, progress=False)
    assert resumed.result.best_epoch == reference.result.best_epoch and resumed.result.stopped_early
    assert _states_equal(resumed.model.state_dict(), reference.model.state_dict())


def test_resume_of_a_finished_run_trains_nothing_more(data, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    first = train_model("mf", data, data, None, {"factors": 3}, config(epochs=2), checkpoint_dir=folder,
                        progress=False)
    again = train_model("mf", data, data, None, {"factors": 3}, config(epochs=2), checkpoint_dir=folder,
                        resume=True, progress=False)
    assert again.result.epochs_run == 2 and again.result.resumed_from == 2
    assert _states_equal(first.model.state_dict(), again.model.state_dict())


@pytest.mark.parametrize("name, options, overrides, message", [
    ("deepmf", OPTIONS, {}, "model 'mf'"),
    ("mf", {"factors": 5}, {}, "other model options"),
    ("mf", {"factors": 3}, {"lr": 0.02}, "other training options"),
])
def test_resume_from_another_run_is_refused(data, tmp_path: Path, name, options, overrides, message) -> None:
    folder = tmp_path / "checkpoint"
    train_model("mf", data, data, None, {"factors": 3}, config(epochs=1), checkpoint_dir=folder,
                progress=False)
    with pytest.raises(ConfigError, match=message):
        train_model(name, data, data, None, options, config(epochs=1, **overrides), checkpoint_dir=folder,
                    resume=True, progress=False)


def test_resume_on_other_data_is_refused(data, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoint"
    train_model("mf", data, data, None, {"factors": 3}, config(epochs=1), checkpoint_dir=folder,
                progress=False)
    with pytest.raises(ConfigError, match="other training data"):
        train_model("mf", data, data.subset(slice(0, 500)), None, {"factors": 3}, config(epochs=1),
                    checkpoint_dir=folder, resume=True, progress=False)


SCRIPT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from safetensors.torch import save_file
    from deepmf.data.synthetic import synthetic_ratings
    from deepmf.training.config import TrainConfig
    from deepmf.training.fit import train_model

    folder, marker, result, mode = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]
    data = synthetic_ratings("lowrank", n_users=40, n_items=30, rank=3, n_observed=900, noise=0.1, seed=5)

    def on_epoch(record):
        if record.epoch == 2 and mode == "victim":
            marker.write_text("2")
            time.sleep(120)  # the parent kills us here, after epoch 2's checkpoint

    config = TrainConfig(optimizer="adamw", lr=0.01, weight_decay=0.01, batch_size=64, epochs=4, seed=7,
                         threads=1, device="cpu", engine="torch")
    options = {"factors": 4, "layers": (8, 4), "dropout": 0.3}
    trained = train_model("deepmf", data, data, None, options, config,
                          checkpoint_dir=None if mode == "fresh" else folder, resume=mode == "resume",
                          on_epoch=on_epoch, progress=False)
    save_file({k: v.contiguous() for k, v in trained.model.state_dict().items()}, result)
""")


@pytest.mark.slow
def test_sigkill_after_epoch_two_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    folder, marker = tmp_path / "checkpoint", tmp_path / "marker"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True,
                              timeout=300)

    victim = subprocess.Popen([sys.executable, str(script), str(folder), str(marker), "unused", "victim"])
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert victim.poll() is None, "training process ended before epoch 2"
            assert time.monotonic() < deadline, "no epoch 2 within 4 minutes"
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        victim.wait(timeout=60)
    assert victim.returncode == -signal.SIGKILL
    assert load_checkpoint(folder).info["epoch"] == 2

    resumed = run(str(folder), str(marker), str(tmp_path / "resumed.safetensors"), "resume")
    assert resumed.returncode == 0, resumed.stderr
    fresh = run("unused", "unused", str(tmp_path / "fresh.safetensors"), "fresh")
    assert fresh.returncode == 0, fresh.stderr
    assert _states_equal(load_file(tmp_path / "resumed.safetensors"),
                         load_file(tmp_path / "fresh.safetensors"))
