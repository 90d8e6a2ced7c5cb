"""The cuda-sgd engine (Triton Hogwild! SGD for biased MF): the update rule by hand, the serial pass equal to
the numba engine's, Hogwild! accuracy next to the numba engine, resume, save/load/recommend and ``train --json``.

Device: marked ``cuda``; on a GPU these run there, elsewhere on the CPU in Triton's interpreter (conftest turns
it on), which runs the same tile program, reduction included. Interpreted kernels are slow (milliseconds per
tile), so the data here is small.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepmf.data.ratings import Ratings, RatingScale
from deepmf.data.splits import random_split
from deepmf.errors import ConfigError
from deepmf.models.registry import create_model
from deepmf.recommender import Recommender
from deepmf.training.config import TrainConfig
from deepmf.training.engines.numba_mf import NumbaMFEngine
from deepmf.training.fit import train_model
from deepmf.training.trainer import Trainer
from deepmf.training.validation import evaluate_rmse

pytest.importorskip("triton")
from deepmf.training.engines import cuda_sgd, select_engine
from deepmf.training.engines.cuda_sgd import CudaSGDEngine, in_flight, tile_shape

pytestmark = pytest.mark.cuda
HAS_CUDA = torch.cuda.is_available()


def _config(**options) -> TrainConfig:
    return TrainConfig(**{"optimizer": "sgd", "engine": "cuda-sgd", "threads": 1, **options})


def _ratings(n_users: int, n_items: int, n: int, seed: int) -> Ratings:
    """``n`` distinct cells of a rank-2 taste matrix, rounded onto a 1..5 scale; every user and item occurs."""
    rng = np.random.default_rng(seed)
    cells = rng.choice(n_users * n_items, size=n, replace=False)
    cells[:n_users] = np.arange(n_users) * n_items + rng.integers(0, n_items, n_users)
    cells[n_users:n_users + n_items] = rng.integers(0, n_users, n_items) * n_items + np.arange(n_items)
    users, items = np.divmod(np.unique(cells), n_items)
    taste = rng.normal(size=(n_users, 2)) @ rng.normal(size=(2, n_items))
    rating = np.clip(np.rint(3 + taste[users, items]), 1, 5).astype(np.float32)
    frame = pd.DataFrame({"user": users, "item": items, "rating": rating})
    return Ratings.from_frame(frame, scale=RatingScale(1.0, 5.0, 1.0))


def _mf(data: Ratings, factors: int, seed: int = 0):
    torch.manual_seed(seed)
    return create_model("mf", data, factors=factors)


def test_one_update_matches_the_rule_by_hand(gpu) -> None:
    frame = pd.DataFrame({"user": [7], "item": [9], "rating": [4.0]})
    data = Ratings.from_frame(frame, scale=RatingScale(1.0, 5.0, 1.0))
    model = create_model("mf", data, factors=2)
    with torch.no_grad():
        model.user_factors.weight.copy_(torch.tensor([[0.1, 0.2]]))
        model.item_factors.weight.copy_(torch.tensor([[0.3, -0.1]]))
        model.user_bias.weight.fill_(0.1)
        model.item_bias.weight.fill_(-0.2)
        model.global_bias.fill_(3.0)
    engine = CudaSGDEngine(model, data, _config(lr=0.1, l2=0.5), gpu)
    # pred = 3 + 0.1 - 0.2 + (0.03 - 0.02) = 2.91, so e = 1.09; each term moves by lr (e other - reg own).
    assert engine.train_epoch(1) == pytest.approx(1.09, abs=1e-6)
    expected = {"user_bias": [[0.204]], "item_bias": [[-0.081]], "user_factors": [[0.1277, 0.1791]],
                "item_factors": [[0.2959, -0.0732]]}
    for name, values in expected.items():
        np.testing.assert_allclose(getattr(model, name).weight.detach().cpu().numpy(), values, atol=1e-6)
    assert model.global_bias.item() == pytest.approx(3.0)


@pytest.mark.parametrize("factors", [5, 16])  # 5: k padded to 8, masked columns must stay untouched
def test_serial_pass_equals_the_numba_engines(gpu, factors: int) -> None:
    data = _ratings(25, 30, 300, seed=1)
    order = np.random.default_rng(3).permutation(len(data))
    on_cpu, on_gpu = _mf(data, factors), _mf(data, factors)
    config = _config(lr=0.03, l2=0.05)
    numba_rmse = NumbaMFEngine(on_cpu, data, config, torch.device("cpu")).train_epoch(1, order=order)
    triton_rmse = CudaSGDEngine(on_gpu, data, config, gpu).train_epoch(1, order=torch.from_numpy(order))
    assert triton_rmse == pytest.approx(numba_rmse, rel=1e-5)
    for name, value in on_cpu.state_dict().items():
        torch.testing.assert_close(on_gpu.state_dict()[name].cpu(), value, rtol=1e-5, atol=1e-6, msg=name)


def test_hogwild_epochs_reach_the_numba_engines_test_rmse(gpu) -> None:
    # 60 x 50 tables keep 6 ratings in flight (the default eighth of the smaller table), in tiles of 4.
    data = _ratings(60, 50, 2000, seed=2)
    split = random_split(data, 0.2, seed=0)
    scores = {}
    for engine, device in (("numba", torch.device("cpu")), ("cuda-sgd", gpu)):
        model = _mf(split.train, 8)
        config = _config(engine=engine, lr=0.04, l2=0.05, epochs=4, device=str(device))
        result = Trainer(config, progress=False).fit(model, split.train)
        assert result.engine == engine
        scores[engine] = evaluate_rmse(model, split.test.to(device), 1.0, 5.0)
    # Both about 0.92 after 4 epochs (seeds move both by up to 0.25 on a table this small, not the gap).
    assert abs(scores["cuda-sgd"] - scores["numba"]) < 0.05, scores
    assert scores["cuda-sgd"] < 1.0  # it learned: predicting the mean scores about 1.13


@pytest.fixture()
def quick(monkeypatch):
    """Whole-table tiles (one program, 16-32 ratings a tile) where a test checks plumbing, not accuracy: the
    interpreter costs milliseconds per tile, whatever its size."""
    monkeypatch.setattr(cuda_sgd, "ROWS_PER_RATING_IN_FLIGHT", 1)


def test_resume_continues_the_same_shuffles(gpu, quick, tmp_path: Path) -> None:
    data = _ratings(30, 30, 500, seed=4)
    config = _config(lr=0.02, l2=0.05, epochs=4, seed=5, device=str(gpu))
    straight = _mf(data, 8)
    Trainer(config, progress=False).fit(straight, data)

    class Interrupt(Exception):
        pass

    def stop_after_two(record) -> None:
        if record.epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(config, checkpoint_dir=tmp_path, progress=False, on_epoch=stop_after_two).fit(_mf(data, 8), data)
    resumed = _mf(data, 8)
    result = Trainer(config, checkpoint_dir=tmp_path, resume=True, progress=False).fit(resumed, data)
    assert result.resumed_from == 2 and result.engine == "cuda-sgd"
    # The interpreter runs programs one after another, so runs repeat bit for bit; on a GPU the Hogwild!
    # races depend on timing and only the statistics repeat.
    tolerance = {"rtol": 0, "atol": 0} if gpu.type == "cpu" else {"rtol": 0, "atol": 0.05}
    for name, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, msg=name, **tolerance)


def test_saved_model_loads_and_recommends_the_same(gpu, quick, tmp_path: Path) -> None:
    data = _ratings(20, 25, 250, seed=6)
    trained = train_model("mf", data, data, None, {"factors": 4}, _config(lr=0.02, l2=0.05, epochs=2,
                                                                        device=str(gpu)), progress=False)
    assert trained.result.engine == "cuda-sgd"
    assert trained.result.device == ("cpu" if gpu.type == "cpu" else "cuda:0")
    recommender = Recommender.from_trained(trained, data, data)
    user = data.user_ids.raw(np.array([0]))[0]
    before = recommender.recommend(user, n=5)
    recommender.save(tmp_path / "model")
    after = Recommender.load(tmp_path / "model", device="cpu").recommend(user, n=5)
    assert list(after["item"]) == list(before["item"]) and len(after) == 5
    np.testing.assert_allclose(after["score"], before["score"], rtol=1e-5)


def test_train_json_says_cuda_sgd(run, gpu, quick, tmp_path: Path) -> None:
    data = _ratings(20, 20, 200, seed=7)
    path = tmp_path / "ratings.csv"
    data.to_frame().to_csv(path, index=False)
    code, out, err = run("train", path, "--model", "mf", "--factors", "4", "--engine", "cuda-sgd", "--device",
                         str(gpu), "--epochs", "2", "--patience", "0", "--json", "--quiet")
    assert code == 0, err
    payload = json.loads(out)
    assert payload["engine"] == "cuda-sgd"
    assert payload["device"] == ("cpu" if gpu.type == "cpu" else "cuda:0")


@pytest.mark.parametrize(("option", "value"), [("weight_decay", 0.1), ("lr_schedule", "cosine")])
def test_an_option_it_cannot_honour_is_refused_by_name(gpu, option, value) -> None:
    data = _ratings(5, 5, 15, seed=0)
    model = create_model("mf", data, factors=2)
    with pytest.raises(ConfigError, match=f"cuda-sgd engine cannot honour {option}={value}"):
        select_engine(model, TrainConfig(engine="cuda-sgd", **{option: value}), gpu)


@pytest.mark.parametrize("model_options", [{"sigmoid": True}, {"bias": False}])
def test_refuses_what_is_not_biased_mf(gpu, model_options) -> None:
    data = _ratings(5, 5, 15, seed=0)
    model = create_model("mf", data, factors=2, **model_options)
    with pytest.raises(ConfigError, match="biased MF only"):
        CudaSGDEngine(model, data, _config(), gpu)


def test_refuses_the_cpu_outside_the_interpreter(monkeypatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    data = _ratings(5, 5, 15, seed=0)
    with pytest.raises(ConfigError, match="runs on cuda"):
        CudaSGDEngine(create_model("mf", data, factors=2), data, _config(), torch.device("cpu"))


def test_tiles_and_ratings_in_flight_follow_the_tables() -> None:
    assert tile_shape(64) == (64, 32, 4)
    assert tile_shape(5) == (8, 32, 4)
    assert tile_shape(256)[:2] == (256, 8)
    assert in_flight(943, 1682) == 117  # ML-100K: about a hundred ratings at once
    assert in_flight(138_493, 26_744) == 3_343  # ML-20M's shape: thousands
    assert in_flight(1, 1) == 1


COMPILE_FOR_HOPPER = """
import collections, re, triton
from triton.backends.compiler import GPUTarget
from deepmf.training.engines.cuda_sgd import mf_sgd_epoch
sig = {"users": "*i32", "items": "*i32", "ratings": "*fp32", "n": "i32", "user_factors": "*fp32",
       "item_factors": "*fp32", "user_bias": "*fp32", "item_bias": "*fp32", "mu": "fp32", "lr": "fp32",
       "reg": "fp32", "sse": "*fp32", "K": "constexpr", "KP": "constexpr", "R": "constexpr"}
aligned = {(i,): [["tt.divisibility", 16]] for i in (0, 1, 2, 4, 5, 6, 7, 11)}  # as torch tensors launch it
for K, KP, R, warps in [(64, 64, 32, 4), (5, 8, 1, 1)]:  # the Hogwild! tile; the serial pass
    src = triton.compiler.ASTSource(fn=mf_sgd_epoch, signature=sig, constexprs={"K": K, "KP": KP, "R": R},
                                    attrs=aligned)
    kernel = triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": warps})
    counts = collections.Counter(re.findall(r"(ld\\.global\\.v4|st\\.global\\.v4)", kernel.asm["ptx"]))
    print(K, dict(counts))
"""


def test_kernel_compiles_for_hopper_with_16_byte_row_accesses(tmp_path: Path) -> None:
    """The real compiler, not the interpreter, on any machine: Triton lowers the kernel to an sm_90 (H100/H200)
    binary with its own ptxas, and rows of k=64 move as 16-byte vectors (coalesced: 16 lanes per 256-byte row)."""
    import subprocess
    import sys

    pytest.importorskip("triton.backends.compiler")
    env = {**os.environ, "TRITON_INTERPRET": "0", "TRITON_CACHE_DIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", COMPILE_FOR_HOPPER], capture_output=True, text=True, env=env,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.strip().splitlines())
    assert set(lines) == {"64", "5"}
    vectors = ast.literal_eval(lines["64"])  # a dict printed by the child
    assert vectors.get("ld.global.v4", 0) >= 8 and vectors.get("st.global.v4", 0) >= 8, vectors


@pytest.mark.slow
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU: ML-100K through the interpreter takes minutes")
def test_ml100k_u1_matches_the_numba_engine_on_a_gpu(ml100k_dir) -> None:
    from deepmf.data import load
    from deepmf.data.splits import parse_split

    data = load(ml100k_dir)
    split = parse_split("u1", data)[0]
    scores = {}
    for engine, device in (("numba", "cpu"), ("cuda-sgd", "cuda")):
        model = _mf(split.train, 64)
        config = _config(engine=engine, lr=0.02, l2=0.1, epochs=20, device=device, threads=None)
        Trainer(config, progress=False).fit(model, split.train)
        scores[engine] = evaluate_rmse(model, split.test.to(device), 1.0, 5.0)
    assert abs(scores["cuda-sgd"] - scores["numba"]) < 0.01, scores
