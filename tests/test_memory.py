"""The memory guard: free memory is read, shapes asked of the tensor factories are counted before allocating."""

from __future__ import annotations

import pytest
import torch

from deepmf import memory
from deepmf.errors import ConfigError, ResourceError


def test_free_memory_is_a_positive_figure_on_the_cpu() -> None:
    free = memory.available_bytes("cpu")
    assert free is None or free > 0


@pytest.mark.parametrize(("n", "text"), [(512, "512 B"), (3_400, "3.4 kB"), (105e9, "105.0 GB"),
                                         (1.5e19, "1.5e+04 PB")])
def test_format_bytes(n: float, text: str) -> None:
    assert memory.format_bytes(n) == text


def test_the_guard_counts_every_shape_form_and_refuses_before_allocating(monkeypatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 10_000)
    with memory.allocation_guard("the test"):
        torch.empty(10, 10)  # 400 bytes
        torch.zeros((10, 10), dtype=torch.float64)  # 800
        torch.full((5,), 1.0)
    with pytest.raises(ResourceError, match=r"the test needs at least 40\.0 MB") as info, \
            memory.allocation_guard("the test"):
        torch.ones(10_000, 1_000)  # 40 MB: never allocated
    assert isinstance(info.value, MemoryError)


def test_training_counts_the_optimizer_copies(monkeypatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 1_000)
    with memory.allocation_guard("sgd", optimizer="sgd"):
        torch.empty(80)  # 320 bytes x (weight, gradient, momentum) = 960
    with pytest.raises(ResourceError, match=r"1\.3 kB"), memory.allocation_guard("adam", optimizer="adam"):
        torch.empty(80)  # x 4 with Adam's two moments


def test_a_further_limit_raises_its_own_error() -> None:
    limit = (100, lambda need: ConfigError(f"over 100: {need}"))
    with pytest.raises(ConfigError, match="over 100"), memory.allocation_guard("x", limit=limit):
        torch.empty(100)
