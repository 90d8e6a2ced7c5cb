"""Speed paths that must not change results: FastEmbedding's gradient, the one-pass L2 penalty, the torch
engine's fused optimizers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from deepmf.data.ratings import Ratings, RatingScale
from deepmf.errors import ConfigError
from deepmf.models.layers import FastEmbedding
from deepmf.models.registry import create_model
from deepmf.training.config import TrainConfig
from deepmf.training.engines.torch_engine import TorchEngine, autocast_dtype, compile_requested, native_bf16


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 40), dim=st.integers(1, 9),
       shape=st.lists(st.integers(1, 12), min_size=1, max_size=2), seed=st.integers(0, 2**16))
def test_fast_embedding_matches_torch_embedding(rows: int, dim: int, shape: list[int], seed: int) -> None:
    # Repeated indices are the case that matters: their gradients must add up.
    generator = torch.Generator().manual_seed(seed)
    index = torch.randint(0, rows, shape, generator=generator)
    upstream = torch.randn(*shape, dim, generator=generator)
    fast, plain = FastEmbedding(rows, dim), nn.Embedding(rows, dim)
    plain.load_state_dict(fast.state_dict())
    outputs = []
    for table in (fast, plain):
        out = table(index)
        (out * upstream).sum().backward()
        outputs.append(out)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    torch.testing.assert_close(fast.weight.grad, plain.weight.grad, rtol=1e-6, atol=1e-6)
    assert fast.state_dict().keys() == plain.state_dict().keys()


def test_fast_embedding_without_grad_is_a_plain_lookup() -> None:
    table = FastEmbedding(5, 3)
    with torch.no_grad():
        out = table(torch.tensor([4, 0, 4]))
    assert out.grad_fn is None
    torch.testing.assert_close(out, table.weight[[4, 0, 4]].detach())


def _tiny_ratings(n: int = 300) -> Ratings:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"user": rng.integers(0, 20, n), "item": rng.integers(0, 30, n),
                          "rating": rng.integers(1, 6, n).astype(np.float32)})
    return Ratings.from_frame(frame.drop_duplicates(["user", "item"]), scale=RatingScale(1.0, 5.0, 1.0))


@pytest.mark.parametrize(("model_name", "options"), [
    ("deepmf", {}),
    ("deepmf", {"bias": False}),
    ("deepmf", {"head": "classification"}),
    ("neumf", {}),
    ("mf", {}),  # the base class's fallback: forward, then regularization
])
def test_forward_with_penalty_equals_forward_and_regularization(model_name: str, options: dict) -> None:
    # The one-pass penalty must give the same output, penalty and gradients as the two separate calls.
    data = _tiny_ratings()
    torch.manual_seed(0)
    shape = {"factors": 4} if model_name == "mf" else {"factors": 4, "layers": (8,), "dropout": 0.0}
    one_pass = create_model(model_name, data, **shape, **options)
    two_calls = create_model(model_name, data, **shape, **options)
    two_calls.load_state_dict(one_pass.state_dict())
    with torch.no_grad():  # non-zero biases, so their penalty terms count
        for model in (one_pass, two_calls):
            for name, parameter in model.named_parameters():
                if name.endswith("_bias.weight"):
                    parameter.copy_(torch.linspace(-1, 1, parameter.numel()).view_as(parameter))
    tensors = data.to()
    users, items = tensors.users[:50], tensors.items[:50]
    output, penalty = one_pass.forward_with_penalty(users, items)
    expected_output, expected_penalty = two_calls(users, items), two_calls.regularization(users, items)
    torch.testing.assert_close(output, expected_output)
    torch.testing.assert_close(penalty, expected_penalty)
    (output.sum() + penalty).backward()
    (expected_output.sum() + expected_penalty).backward()
    for (name, parameter), (_, reference) in zip(one_pass.named_parameters(), two_calls.named_parameters(),
                                                 strict=True):
        torch.testing.assert_close(parameter.grad, reference.grad, msg=name)


def test_torch_engine_fuses_dense_optimizers_and_they_match_unfused_steps(monkeypatch) -> None:
    monkeypatch.setenv("DEEPMF_PRECISION", "fp32")  # compare optimizers alone, in the reference's precision
    data = _tiny_ratings()
    config = TrainConfig(optimizer="adam", lr=0.01, l2=0.05, batch_size=64, threads=1)
    torch.manual_seed(0)
    fused_model = create_model("deepmf", data, factors=4, layers=(8,), dropout=0.0)
    plain_model = create_model("deepmf", data, factors=4, layers=(8,), dropout=0.0)
    plain_model.load_state_dict(fused_model.state_dict())
    engine = TorchEngine(fused_model, data, config, torch.device("cpu"))
    assert all(o.defaults.get("fused") for o in engine.optimizers)
    engine.train_epoch(1)
    # The same epoch by hand with the unfused optimizer and the engine's shuffle.
    optimizer = torch.optim.Adam(plain_model.parameters(), lr=config.lr)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(config.seed))
    tensors = data.to()
    users, items, ratings = tensors.users[order], tensors.items[order], tensors.ratings[order]
    for start in range(0, len(data), config.batch_size):
        u, i, r = (t[start:start + config.batch_size] for t in (users, items, ratings))
        loss = plain_model.loss(plain_model(u, i), r) + config.l2 * plain_model.regularization(u, i)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for name, value in plain_model.state_dict().items():
        torch.testing.assert_close(fused_model.state_dict()[name], value, rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize(("setting", "model_name", "expected"), [
    ("fp32", "deepmf", None),
    ("auto", "mf", None),  # no Linear layer: nothing to gain
])
def test_precision_choice(monkeypatch, setting: str, model_name: str, expected) -> None:
    monkeypatch.setenv("DEEPMF_PRECISION", setting)
    model = create_model(model_name, _tiny_ratings(), factors=4)
    assert autocast_dtype(model, torch.device("cpu")) is expected


def test_precision_setting_is_checked(monkeypatch) -> None:
    monkeypatch.setenv("DEEPMF_PRECISION", "fp8")
    with pytest.raises(ConfigError, match="DEEPMF_PRECISION"):
        autocast_dtype(create_model("deepmf", _tiny_ratings(), factors=4), torch.device("cpu"))


@pytest.mark.skipif(not native_bf16(torch.device("cpu")), reason="this CPU has no native bfloat16")
@pytest.mark.parametrize("head", ["regression", "classification"])
def test_bf16_forward_trains_both_heads_and_keeps_float32_weights(monkeypatch, head: str) -> None:
    monkeypatch.setenv("DEEPMF_PRECISION", "bf16")
    data = _tiny_ratings()
    model = create_model("deepmf", data, factors=4, layers=(8,), head=head)
    engine = TorchEngine(model, data, TrainConfig(lr=0.01, batch_size=64, threads=1), torch.device("cpu"))
    first = engine.train_epoch(1)
    for epoch in range(2, 20):
        last = engine.train_epoch(epoch)
    assert engine.precision == "bf16" and last < first
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_compile_setting_is_checked(monkeypatch) -> None:
    monkeypatch.setenv("DEEPMF_COMPILE", "yes")
    with pytest.raises(ConfigError, match="DEEPMF_COMPILE"):
        compile_requested()
    monkeypatch.setenv("DEEPMF_COMPILE", "0")
    data = _tiny_ratings()
    engine = TorchEngine(create_model("deepmf", data, factors=4), data, TrainConfig(threads=1), torch.device("cpu"))
    assert not engine.compiled


@pytest.mark.slow
def test_compiled_step_trains_like_the_eager_step(monkeypatch, tmp_path) -> None:
    # Same start, same shuffle, fp32 both ways: the compiled step may only reorder float sums. The last batch
    # is smaller than the others, so the recompiled (dynamic-shape) graph runs too.
    monkeypatch.setenv("DEEPMF_PRECISION", "fp32")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path))
    data = _tiny_ratings()
    config = TrainConfig(optimizer="adam", lr=0.01, l2=0.05, batch_size=64, threads=1)
    torch.manual_seed(0)
    models = [create_model("deepmf", data, factors=4, layers=(8,)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    rmses = []
    for setting, model in zip(("0", "1"), models, strict=True):
        monkeypatch.setenv("DEEPMF_COMPILE", setting)
        engine = TorchEngine(model, data, config, torch.device("cpu"))
        assert engine.compiled == (setting == "1")
        rmses.append([engine.train_epoch(epoch) for epoch in (1, 2)])
    assert rmses[1] == pytest.approx(rmses[0], rel=1e-4)
    for name, value in models[0].state_dict().items():
        torch.testing.assert_close(models[1].state_dict()[name], value, rtol=1e-4, atol=1e-5, msg=name)
