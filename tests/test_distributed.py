"""Data-parallel training under torchrun (training/distributed.py): sharding, environment, engine choice, errors.

CPU only: the process groups here use gloo over loopback. The end-to-end tests at the bottom launch real
torchrun jobs on ML-100K u1 and are marked slow (each takes some seconds on 2 cores).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmf.cli.app import _register, app
from deepmf.cli.common import run_app
from deepmf.data.ratings import Ratings
from deepmf.errors import ConfigError, DistributedError
from deepmf.experiment import train_config_for
from deepmf.models.registry import create_model
from deepmf.training.checkpoint import Checkpoint
from deepmf.training.config import TrainConfig
from deepmf.training.distributed import (
    DataParallel,
    DistEnv,
    cpu_threads,
    dist_env,
    epoch_steps,
    process_group,
    rank_device,
    rank_seed,
    shard_epoch,
)
from deepmf.training.trainer import Trainer


# ---- sharding ----------------------------------------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 3000), batch_size=st.integers(5, 700), world_size=st.integers(1, 5))
def test_shards_split_every_global_batch_and_weight_it_to_the_global_mean(n: int, batch_size: int,
                                                                         world_size: int) -> None:
    shards = [shard_epoch(n, batch_size, rank, world_size) for rank in range(world_size)]
    single_positions, single_steps = shard_epoch(n, batch_size, 0, 1)
    assert single_positions.tolist() == list(range(n))
    n_batches = len(single_steps)
    values = torch.randn(n, dtype=torch.float64)
    scored = torch.zeros(n, dtype=torch.int64)
    for positions, steps in shards:
        # DDP needs every rank to take the same number of steps; each rank's steps tile its shard.
        assert len(steps) == n_batches
        assert steps[0].start == 0 and steps[-1].end == len(positions)
        assert all(a.end == b.start for a, b in itertools.pairwise(steps))
    for b, whole in enumerate(single_steps):
        batch = set(range(whole.start, whole.end))
        pieces = [positions[steps[b].start:steps[b].end] for positions, steps in shards]
        assert set().union(*(set(p.tolist()) for p in pieces)) == batch
        # The mean over ranks of weight x (the rank's mean loss) is the global batch's mean loss, so DDP's
        # averaged gradient is the one-process gradient.
        weighted = sum(steps[b].weight * values[p].mean() for p, (_, steps) in zip(pieces, shards, strict=True))
        assert float(weighted / world_size) == pytest.approx(float(values[whole.start:whole.end].mean()),
                                                             rel=1e-9, abs=1e-12)
        for p, (_, steps) in zip(pieces, shards, strict=True):
            if steps[b].scored:
                scored[p] += 1
    assert scored.tolist() == [1] * n  # each rating's error is counted by exactly one rank


def test_a_batch_smaller_than_the_world_is_refused() -> None:
    with pytest.raises(ConfigError, match="batch size 2 is smaller than the 3 processes"):
        shard_epoch(10, 2, 0, 3)


def test_one_process_trains_the_permutation_in_consecutive_batches() -> None:
    permutation = torch.randperm(10)
    order, steps = epoch_steps(permutation, 4, None)
    assert order is permutation
    assert [(s.start, s.end, s.weight, s.scored) for s in steps] == [(0, 4, 1.0, True), (4, 8, 1.0, True),
                                                                      (8, 10, 1.0, True)]


def test_a_rank_trains_its_piece_of_the_shared_permutation() -> None:
    permutation = torch.tensor([9, 8, 7, 6, 5, 4, 3, 2, 1, 0])
    group = DataParallel(DistEnv(rank=1, local_rank=1, world_size=2, local_world_size=2), torch.device("cpu"))
    order, steps = epoch_steps(permutation, 4, group)
    # Global batches [9 8 7 6] [5 4 3 2] [1 0]: rank 1 takes the second half of each.
    assert order.tolist() == [7, 6, 3, 2, 0]
    assert [(s.start, s.end, s.weight) for s in steps] == [(0, 2, 1.0), (2, 4, 1.0), (4, 5, 1.0)]


# ---- environment -------------------------------------------------------------------------------------------
@pytest.fixture()
def torchrun_env(monkeypatch: pytest.MonkeyPatch):
    def set_env(**values: object) -> None:
        for key in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
            monkeypatch.delenv(key, raising=False)
        for key, value in values.items():
            monkeypatch.setenv(key, str(value))

    return set_env


def test_outside_torchrun_the_process_is_rank_0_of_1(torchrun_env) -> None:
    torchrun_env()
    env = dist_env()
    assert env == DistEnv(0, 0, 1, 1) and env.is_main


def test_torchrun_variables_are_read_and_checked(torchrun_env) -> None:
    torchrun_env(RANK=3, LOCAL_RANK=1, WORLD_SIZE=4, LOCAL_WORLD_SIZE=2)
    env = dist_env()
    assert env == DistEnv(3, 1, 4, 2) and not env.is_main
    assert rank_device(torch.device("cuda"), env) == torch.device("cuda", 1)
    assert rank_device(torch.device("cuda", 0), env) == torch.device("cuda", 0)
    assert rank_device(torch.device("cpu"), env) == torch.device("cpu")
    assert cpu_threads(env) == max(1, len(os.sched_getaffinity(0)) // 2)
    torchrun_env(RANK=4, WORLD_SIZE=4)
    with pytest.raises(ConfigError, match="RANK=4"):
        dist_env()
    torchrun_env(RANK="one", WORLD_SIZE=2)
    with pytest.raises(ConfigError, match="RANK='one' is not an integer"):
        dist_env()


def test_each_rank_draws_its_own_dropout_stream() -> None:
    seeds = {rank_seed(0, rank, epoch) for rank in range(4) for epoch in (0, 3)}
    assert len(seeds) == 8
    assert rank_seed(5, 1, 3) == rank_seed(5, 1, 3)


def test_a_peer_that_never_joins_ends_in_one_clear_error(torchrun_env, monkeypatch: pytest.MonkeyPatch) -> None:
    torchrun_env(RANK=0, LOCAL_RANK=0, WORLD_SIZE=2, LOCAL_WORLD_SIZE=2)
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    started = time.monotonic()
    with pytest.raises(DistributedError, match="--resume"), process_group("cpu", timeout=1.0):
        pass
    assert time.monotonic() - started < 30
    assert not torch.distributed.is_initialized()


def test_a_lost_peer_exits_1_and_each_rank_names_itself(torchrun_env, capsys: pytest.CaptureFixture[str]) -> None:
    import typer

    failing = typer.Typer()

    @failing.command()
    def job() -> None:
        raise DistributedError("the 2-process group failed")

    torchrun_env(RANK=1, LOCAL_RANK=1, WORLD_SIZE=2, LOCAL_WORLD_SIZE=2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["deepmf"])
        assert run_app(failing) == 1  # not the user's mistake: not exit 2
    assert capsys.readouterr().err.strip() == "error: rank 1: the 2-process group failed"


def test_only_train_runs_under_torchrun(run, torchrun_env) -> None:
    torchrun_env(RANK=1, LOCAL_RANK=1, WORLD_SIZE=2, LOCAL_WORLD_SIZE=2)
    code, out, err = run("evaluate", "ml-100k", "--model", "mf")
    assert code == 2 and out == ""
    assert err.strip() == ("error: rank 1: `deepmf evaluate` runs in one process; of the deepmf commands only "
                           "`train` runs under torchrun (WORLD_SIZE=2)")


# ---- which engine trains in a job of several processes -------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_ratings():
    from deepmf.data.synthetic import synthetic_ratings

    return synthetic_ratings("lowrank", seed=0)


def _engine_name(model_name: str, ratings, rank: int = 0, **train_options: object) -> str:
    return _choice(model_name, ratings, rank, **train_options).name


def _choice(model_name: str, ratings, rank: int = 0, **train_options: object):
    model = create_model(model_name, ratings)
    group = DataParallel(DistEnv(rank, rank, 2, 2), torch.device("cpu"))
    config = train_config_for(model_name, train_options)  # the model's tuned defaults, as the CLI does
    return Trainer(config)._choose_engine(model, torch.device("cpu"), group, None, len(ratings))[1]


def test_mf_switches_to_the_torch_engine_and_says_so(tiny_ratings) -> None:
    choice = _choice("mf", tiny_ratings)
    assert choice.name == "torch"
    assert choice.note == "its default engine, numba, runs in one process; this job has 2"
    assert choice.config.engine == "auto"  # the run records what was configured, so a resume compares equal
    assert _engine_name("mf", tiny_ratings, rank=1) == "torch"
    assert _choice("deepmf", tiny_ratings).note == ""
    assert _engine_name("deepmf", tiny_ratings) == "torch"
    assert _engine_name("svdpp", tiny_ratings, engine="torch") == "torch"  # asked for by name


@pytest.mark.parametrize(("model", "options", "message"), [
    ("bayes", {}, "model 'bayes' with engine 'gibbs' trains in one process: run it without torchrun$"),
    ("autorec", {}, "engine 'autorec' trains in one process"),
    ("mf", {"engine": "numba"}, r"engine 'numba' trains in one process: .*\(or pass --engine torch\)"),
    # SVD++'s defaults are tuned for its compiled engine: no quiet switch to a worse model.
    ("svdpp", {}, r"engine 'svdpp' trains in one process: .*--engine torch, whose results with this model's "
                  r"default settings are worse"),
])
def test_one_process_engines_refuse_a_job_of_several(tiny_ratings, model: str, options: dict[str, object],
                                                      message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _engine_name(model, tiny_ratings, **options)


def test_resuming_with_auto_continues_with_the_checkpoints_engine(tiny_ratings) -> None:
    # A run that a torchrun job checkpointed with the torch engine resumes in one process with that engine.
    model = create_model("mf", tiny_ratings)
    written_by_torch = Checkpoint({"engine": "torch"}, {}, None, {})
    trainer = Trainer(TrainConfig())
    def engine(checkpoint: Checkpoint | None) -> str:
        return trainer._choose_engine(model, torch.device("cpu"), None, checkpoint, len(tiny_ratings))[1].name

    assert engine(None) == "numba"
    assert engine(written_by_torch) == "torch"
    written_by_numba = Checkpoint({"engine": "numba"}, {}, None, {})
    assert engine(written_by_numba) == "numba"


# ---- the engine's data-parallel path, in this process ----------------------------------------------------------
@pytest.fixture()
def group_of_one(tmp_path: Path):
    """A real gloo process group of one rank: DDP runs (hooks, all-reduce, sparse buckets) without other processes."""
    store = torch.distributed.FileStore(str(tmp_path / "store"), 1)
    torch.distributed.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield DataParallel(DistEnv(0, 0, 1, 1), torch.device("cpu"))
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.parametrize(("model_name", "options", "train_options"), [
    ("mf", {"factors": 8}, {"l2": 0.05}),
    ("mf", {"factors": 8}, {"optimizer": "sparse_adam", "lr": 0.02}),
    ("deepmf", {"factors": 4, "layers": (8,), "dropout": 0.2, "batchnorm": True}, {"l2": 0.1}),
    ("deepmf", {"factors": 4, "layers": (8,), "head": "classification"}, {}),
    ("neumf", {"factors": 4, "layers": (8,)}, {"weight_decay": 1e-4}),
])
def test_the_data_parallel_step_is_the_one_process_step(group_of_one: DataParallel, model_name: str,
                                                        options: dict, train_options: dict,
                                                        request: pytest.FixtureRequest) -> None:
    from deepmf.training.engines.torch_engine import TorchEngine

    rng = np.random.default_rng(2)
    users, items = np.nonzero(rng.random((40, 30)) < 0.6)  # 1..5 stars: the classification head needs a scale
    stars = np.clip(np.rint(3 + rng.normal(size=40)[users] + rng.normal(size=30)[items]), 1, 5)
    data = Ratings.from_frame(pd.DataFrame({"user": users, "item": items, "rating": stars}))
    config = TrainConfig(**{"optimizer": "adam", "lr": 0.01, "batch_size": 64, "seed": 1, "threads": 1,
                            "engine": "torch", **train_options})
    rmses, weights = [], []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the Trainer would for threads=1 (tiny batches: more threads only wait)
    request.addfinalizer(lambda: torch.set_num_threads(threads))
    for distributed in (False, True):
        torch.manual_seed(0)
        model = create_model(model_name, data, **options)
        engine = TorchEngine(model, data, config, torch.device("cpu"))
        if distributed:
            engine.distribute(group_of_one)
        rmses.append([engine.train_epoch(epoch) for epoch in (1, 2)])
        weights.append(model.state_dict())
    assert rmses[1] == pytest.approx(rmses[0], rel=1e-6)
    for name, value in weights[0].items():
        torch.testing.assert_close(weights[1][name], value, rtol=1e-5, atol=1e-6)


# ---- end to end: torchrun jobs on ML-100K u1 ------------------------------------------------------------------
# A small deep MF, a few epochs, one thread per process: seconds per job on 2 cores.
SMALL = ("--split", "u1", "--model", "deepmf", "--factors", "16", "--layers", "32", "--patience", "0",
         "--threads", "1", "--quiet", "--json")
EPOCHS = ("--epochs", "4")


def _torchrun(*args: object, launcher: tuple[str, ...] = ("--nproc-per-node", "2")) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "deepmf", "train", "ml-100k",
            *map(str, args)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _finish(process: subprocess.Popen, timeout: float = 300) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def _train_here(*args: object) -> dict:
    """``deepmf train ml-100k ARGS`` in this process (no torchrun): its JSON summary."""
    stdout = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(stdout):
        patch.setattr(sys, "argv", ["deepmf", "train", "ml-100k", *map(str, args)])
        _register()
        code = run_app(app)
    assert code == 0
    return json.loads(stdout.getvalue())


@pytest.fixture(scope="module")
def one_process(data_root: Path) -> dict:
    """The same training in this (one) process: the reference the jobs must follow."""
    return _train_here(*SMALL, *EPOCHS)


def _assert_follows(summary: dict, reference: dict) -> None:
    assert summary["world_size"] == 2 and summary["engine"] == "torch"
    assert summary["epochs_run"] == reference["epochs_run"]
    assert summary["test"]["rmse"] == pytest.approx(reference["test"]["rmse"], abs=0.01)
    # The global batch is the same whatever the world size, so training follows the one-process trajectory.
    for ours, theirs in zip(summary["history"], reference["history"], strict=True):
        assert ours["train_rmse"] == pytest.approx(theirs["train_rmse"], abs=0.005)


@pytest.mark.slow
def test_two_processes_train_like_one(one_process: dict, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    code, stdout, stderr = _finish(subprocess.Popen(_torchrun(*SMALL, *EPOCHS, "--out", out),
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    assert code == 0, stderr
    summary = json.loads(stdout)  # one JSON object: only rank 0 prints
    _assert_follows(summary, one_process)
    saved = json.loads((out / "model.json").read_text())
    assert saved["summary"]["world_size"] == 2
    checkpoint = json.loads((out / "checkpoint" / "state.json").read_text())
    assert checkpoint["epoch"] == 4


@pytest.mark.slow
def test_two_launchers_as_two_nodes_train_like_one(one_process: dict, tmp_path: Path) -> None:
    port = _free_port()
    launchers = [subprocess.Popen(
        _torchrun(*SMALL, *EPOCHS, "--out", tmp_path / "nodes", launcher=(
            "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1",
            "--rdzv-endpoint", f"127.0.0.1:{port}")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for node in (0, 1)]
    (code0, out0, err0), (code1, out1, err1) = (_finish(p) for p in launchers)
    assert code0 == 0 and code1 == 0, err0 + err1
    assert out1 == ""  # node 1 holds rank 1, which prints nothing
    _assert_follows(json.loads(out0), one_process)


@pytest.mark.slow
def test_a_killed_rank_stops_the_job_and_resume_finishes_it(data_root: Path, tmp_path: Path) -> None:
    out = tmp_path / "killed"
    epochs = ("--epochs", "15")
    job = subprocess.Popen(_torchrun(*SMALL, *epochs, "--out", out), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    state = out / "checkpoint" / "state.json"
    deadline = time.monotonic() + 240
    while not state.exists() and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert job.poll() is None, "the job ended before its first checkpoint"
    rank1 = _worker_pid(job.pid, rank=1)
    os.kill(rank1, signal.SIGKILL)
    killed = time.monotonic()
    code, stdout, stderr = _finish(job, timeout=120)
    assert time.monotonic() - killed < 60
    assert code != 0
    # Under --json the surviving rank's error is one JSON object on stdout (exit code 1: not the user's mistake).
    error = json.loads(stdout)
    assert error["exit_code"] == 1, stderr
    assert error["error"].startswith("rank 0: ") and "rerun the same command with --resume" in error["error"]
    before = json.loads(state.read_text())
    assert 1 <= before["epoch"] < 15

    code, stdout, stderr = _finish(subprocess.Popen(_torchrun(*SMALL, *epochs, "--out", out, "--resume"),
                                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary["epochs_run"] == 15 and summary["world_size"] == 2
    assert [h["epoch"] for h in summary["history"]] == list(range(1, 16))
    # It continued after the last complete epoch: the epochs before the kill are the checkpoint's, untouched.
    assert summary["history"][:before["epoch"]] == before["history"]
    # The checkpoint does not depend on the number of processes: one process resumes it (nothing left to train).
    again = _train_here(*SMALL, *epochs, "--out", out, "--resume")
    assert again["world_size"] == 1 and again["history"] == summary["history"]
    assert again["test"]["rmse"] == pytest.approx(summary["test"]["rmse"], abs=1e-6)
    assert summary["test"]["rmse"] < 0.98


def _worker_pid(launcher: int, rank: int) -> int:
    """The pid of the torchrun worker with ``RANK=rank`` among the launcher's children (Linux /proc)."""
    for _ in range(100):
        for child in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
            if f"RANK={rank}".encode() in environ:
                return int(child)
        time.sleep(0.05)
    raise AssertionError(f"no worker with RANK={rank}")
