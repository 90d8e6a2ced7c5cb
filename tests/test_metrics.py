"""rmse, mae and accuracy against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from deepmf.errors import DataError
from deepmf.evaluation.metrics import accuracy, mae, rmse


def test_rmse_and_mae_by_hand() -> None:
    predicted = [3.0, 4.0, 2.0, 5.0]
    actual = [4.0, 4.0, 4.0, 4.0]
    # errors -1, 0, -2, 1: squares 1, 0, 4, 1 -> mean 1.5; absolute 1, 0, 2, 1 -> mean 1.0
    assert rmse(predicted, actual) == pytest.approx(math.sqrt(1.5))
    assert mae(predicted, actual) == pytest.approx(1.0)


def test_metrics_accept_tensors_and_arrays_alike() -> None:
    predicted = torch.tensor([1.5, 2.5], dtype=torch.float32)
    actual = np.array([1.0, 3.0])
    assert rmse(predicted, actual) == pytest.approx(0.5)
    assert mae(predicted, actual) == pytest.approx(0.5)


def test_accuracy_counts_exact_matches_and_rounds_to_the_step() -> None:
    assert accuracy([1, 2, 3, 4], [1, 2, 4, 4]) == pytest.approx(0.75)
    # With step 0.5: 3.2 -> 3.0 (match), 4.3 -> 4.5 (no match with 4.0), 1.0 -> 1.0 (match)
    assert accuracy([3.2, 4.3, 1.0], [3.0, 4.0, 1.0], step=0.5) == pytest.approx(2 / 3)


@pytest.mark.parametrize("metric", [rmse, mae, accuracy])
def test_mismatched_or_empty_inputs_are_data_errors(metric) -> None:
    with pytest.raises(DataError, match="differ in length"):
        metric([1.0, 2.0], [1.0])
    with pytest.raises(DataError, match="no ratings"):
        metric([], [])


def test_accuracy_refuses_a_non_positive_step() -> None:
    with pytest.raises(DataError, match="step"):
        accuracy([1.0], [1.0], step=0)


@given(st.lists(st.floats(-10, 10), min_size=1, max_size=50), st.floats(-5, 5))
def test_constant_offset_gives_that_offset(values: list[float], offset: float) -> None:
    shifted = [v + offset for v in values]
    assert rmse(shifted, values) == pytest.approx(abs(offset), abs=1e-9)
    assert mae(shifted, values) == pytest.approx(abs(offset), abs=1e-9)


@given(st.lists(st.tuples(st.floats(-10, 10), st.floats(-10, 10)), min_size=1, max_size=50))
def test_mae_never_exceeds_rmse(pairs: list[tuple[float, float]]) -> None:
    predicted, actual = zip(*pairs, strict=True)
    assert mae(predicted, actual) <= rmse(predicted, actual) + 1e-12
