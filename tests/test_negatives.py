"""Negative sampling (training/engines/negatives.py): a drawn negative is never a positive of its user, every
unobserved item can be drawn, and the draws do not depend on the number of threads."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmf.errors import DataError
from deepmf.training.engines.negatives import draw_distinct_negatives, draw_negatives, positives_csr


@st.composite
def positives(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int, int]:
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 12))
    cells = draw(st.sets(st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1)), max_size=40))
    pairs = np.array(sorted(cells), dtype=np.int32).reshape(-1, 2)
    order = np.random.default_rng(len(cells)).permutation(len(pairs))  # any row order
    return pairs[order, 0], pairs[order, 1], n_users, n_items


@settings(max_examples=200, deadline=None)
@given(positives(), st.integers(0, 2**63 - 1))
def test_a_sampled_negative_is_never_a_training_positive(data, salt: int) -> None:
    users, items, n_users, n_items = data
    indptr, seen = positives_csr(users, items, n_users)
    draws_for = np.repeat(np.arange(n_users, dtype=np.int32), 25)
    negatives = draw_negatives(indptr, seen, draws_for, n_items, np.uint64(salt))
    positive = {(int(u), int(i)) for u, i in zip(users, items, strict=True)}
    for user, item in zip(draws_for, negatives, strict=True):
        n_unobserved = n_items - int(np.sum(users == user))
        if n_unobserved == 0:
            assert item == -1  # nothing left to draw: said so, never a positive
        else:
            assert 0 <= item < n_items and (int(user), int(item)) not in positive


def test_every_unobserved_item_is_drawn_about_equally_often() -> None:
    users = np.zeros(3, dtype=np.int32)
    items = np.array([7, 0, 3], dtype=np.int32)
    indptr, seen = positives_csr(users, items, 1)
    draws = draw_negatives(indptr, seen, np.zeros(70_000, dtype=np.int32), 10, np.uint64(1))
    counts = np.bincount(draws, minlength=10)
    assert counts[[0, 3, 7]].sum() == 0
    # 7 unobserved items, 10,000 draws each expected; a 5 % band is over 10 standard deviations wide.
    assert np.all(np.abs(counts[[1, 2, 4, 5, 6, 8, 9]] - 10_000) < 500)


def test_draws_do_not_depend_on_threads() -> None:
    users = np.array([0, 0, 1], dtype=np.int32)
    items = np.array([1, 2, 0], dtype=np.int32)
    indptr, seen = positives_csr(users, items, 2)
    draw_for = np.tile(np.array([0, 1], dtype=np.int32), 5_000)
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = draw_negatives(indptr, seen, draw_for, 50, np.uint64(42))
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        many = draw_negatives(indptr, seen, draw_for, 50, np.uint64(42))
    finally:
        numba.set_num_threads(previous)
    assert np.array_equal(one, many)
    assert not np.array_equal(one, draw_negatives(indptr, seen, draw_for, 50, np.uint64(43)))


def test_repeated_pairs_are_refused() -> None:
    with pytest.raises(DataError, match="once"):
        positives_csr(np.array([0, 0], dtype=np.int32), np.array([1, 1], dtype=np.int32), 1)


@settings(max_examples=100, deadline=None)
@given(positives(), st.integers(1, 8), st.integers(0, 2**63 - 1))
def test_evaluation_negatives_are_distinct_unobserved_items(data, m: int, salt: int) -> None:
    users, items, n_users, n_items = data
    indptr, seen = positives_csr(users, items, n_users)
    drawn = draw_distinct_negatives(indptr, seen, np.arange(n_users, dtype=np.int32), n_items, m, np.uint64(salt))
    for user, row in enumerate(drawn):
        unobserved = set(range(n_items)) - set(items[users == user].tolist())
        chosen = [int(i) for i in row if i >= 0]
        assert len(chosen) == len(set(chosen)) == min(m, len(unobserved))
        assert set(chosen) <= unobserved
