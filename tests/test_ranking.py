"""Ranking metrics against values worked out by hand, plus properties that must hold for any input."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepmf.evaluation.ranking import (
    average_precision_at_k,
    catalogue_coverage,
    hit_matrix,
    ndcg_at_k,
    ranking_metrics,
    relevant_csr,
    sampled_metrics,
)

# Four users, k = 3. User 2 has no relevant item and is left out of the means.
TOP = np.array([[1, 2, 3], [4, -1, -1], [0, 1, 2], [7, 8, 9]])
REL_ROWS = np.array([0, 0, 1, 3])
REL_ITEMS = np.array([2, 5, 4, 1])


def test_relevant_csr_groups_by_row() -> None:
    indptr, indices = relevant_csr(np.array([3, 0, 1, 0]), np.array([1, 2, 4, 5]), 4)
    assert indptr.tolist() == [0, 2, 3, 3, 4]
    assert sorted(indices[0:2].tolist()) == [2, 5]
    assert indices[2:3].tolist() == [4]
    assert indices[3:4].tolist() == [1]


def test_hit_matrix_by_hand() -> None:
    indptr, indices = relevant_csr(REL_ROWS, REL_ITEMS, 4)
    hits = hit_matrix(TOP, indptr, indices)
    assert hits.tolist() == [[False, True, False], [True, False, False], [False, False, False],
                             [False, False, False]]


def test_ranking_metrics_by_hand() -> None:
    indptr, indices = relevant_csr(REL_ROWS, REL_ITEMS, 4)
    m = ranking_metrics(TOP, indptr, indices, n_catalogue=10)
    # user 0: one hit at rank 2 of 2 relevant; user 1: hit at rank 1 of 1; user 3: nothing.
    assert m["n_users"] == 3
    assert m["precision"] == pytest.approx((1 / 3 + 1 / 3 + 0) / 3)
    assert m["recall"] == pytest.approx((1 / 2 + 1 + 0) / 3)
    ndcg_user0 = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert m["ndcg"] == pytest.approx((ndcg_user0 + 1.0 + 0.0) / 3)
    assert m["hit_rate"] == pytest.approx(2 / 3)
    # AP@3: user 0 has precision 1/2 at its hit (rank 2), over min(3, 2 relevant) = 2; user 1: 1; user 3: 0.
    assert m["map"] == pytest.approx((0.25 + 1.0 + 0.0) / 3)
    # items 0,1,2,3,4,7,8,9 were recommended: 8 of 10; the -1 padding is not an item.
    assert m["coverage"] == pytest.approx(0.8)


def test_padding_never_counts_as_a_hit() -> None:
    """A padded slot (-1) of a short list is a miss, even right after a user whose relevant item is the largest.

    The hit matrix keys each (row, item) as ``row * width + item``; a pad's key ``r * width - 1`` equals the key
    of row r - 1's item ``width - 1``, so without the padding mask user 1's two empty slots would "hit" user 0's
    item 4, doubling mean precision (1/3 -> 2/3) and pushing user 1's NDCG above 1.
    """
    top = np.array([[4, 0, 2], [3, -1, -1]])
    indptr, indices = relevant_csr(np.array([0, 1]), np.array([4, 3]), 2)
    assert hit_matrix(top, indptr, indices).tolist() == [[True, False, False], [True, False, False]]
    m = ranking_metrics(top, indptr, indices, n_catalogue=5)
    # Each user: one relevant item, found at rank 1 -> precision 1/3, recall 1, NDCG 1, a hit.
    assert m["precision"] == pytest.approx(1 / 3)
    assert m["recall"] == pytest.approx(1.0) and m["ndcg"] == pytest.approx(1.0)
    assert m["hit_rate"] == 1.0 and m["n_users"] == 2
    assert m["coverage"] == pytest.approx(4 / 5)  # items 0, 2, 3, 4
    # A user with nothing left to recommend (all padding) has no hit, whatever the user before holds.
    empty = np.array([[4, 0, 2], [-1, -1, -1]])
    m = ranking_metrics(empty, indptr, indices, n_catalogue=5)
    assert m["precision"] == pytest.approx((1 / 3 + 0) / 2) and m["hit_rate"] == pytest.approx(0.5)
    assert m["ndcg"] == pytest.approx(0.5)


def _hits_by_loops(top: np.ndarray, relevant: list[set[int]]) -> list[list[bool]]:
    return [[int(item) != -1 and int(item) in relevant[row] for item in top[row]] for row in range(len(top))]


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_hit_matrix_and_metrics_match_a_loop_over_users(n_rows: int, k: int, n_items: int, seed: int) -> None:
    """Against a plain per-user loop, with short (padded) lists and users without relevant items."""
    rng = np.random.default_rng(seed)
    top = np.full((n_rows, k), -1, dtype=np.int64)
    relevant = []
    for row in range(n_rows):
        length = int(rng.integers(0, min(k, n_items) + 1))
        top[row, :length] = rng.choice(n_items, size=length, replace=False)
        relevant.append(set(rng.choice(n_items, size=int(rng.integers(0, n_items + 1)), replace=False).tolist()))
    rows = np.array([row for row in range(n_rows) for _ in relevant[row]], dtype=np.int64)
    items = np.array([item for row in range(n_rows) for item in sorted(relevant[row])], dtype=np.int64)
    indptr, indices = relevant_csr(rows, items, n_rows)
    expected = _hits_by_loops(top, relevant)
    assert hit_matrix(top, indptr, indices).tolist() == expected
    m = ranking_metrics(top, indptr, indices, n_catalogue=n_items)
    users = [row for row in range(n_rows) if relevant[row]]
    assert m["n_users"] == len(users)
    recommended = {int(item) for item in top.ravel() if item != -1}
    assert m["coverage"] == pytest.approx(len(recommended) / n_items)
    if not users:
        assert math.isnan(m["precision"])
        return
    precision = [sum(expected[u]) / k for u in users]
    recall = [sum(expected[u]) / len(relevant[u]) for u in users]
    ndcg = [sum(hit / math.log2(rank + 2) for rank, hit in enumerate(expected[u]))
            / sum(1 / math.log2(rank + 2) for rank in range(min(k, len(relevant[u])))) for u in users]
    assert m["precision"] == pytest.approx(np.mean(precision))
    assert m["recall"] == pytest.approx(np.mean(recall))
    assert m["ndcg"] == pytest.approx(np.mean(ndcg))
    assert m["hit_rate"] == pytest.approx(np.mean([any(expected[u]) for u in users]))


def test_no_relevant_rows_gives_nan_not_crash() -> None:
    indptr, indices = relevant_csr(np.array([], dtype=np.int64), np.array([], dtype=np.int64), 2)
    m = ranking_metrics(np.array([[0, 1], [1, 0]]), indptr, indices, n_catalogue=2)
    assert m["n_users"] == 0
    assert math.isnan(m["precision"]) and math.isnan(m["ndcg"])
    assert m["coverage"] == 1.0


def test_coverage_of_empty_catalogue_is_nan() -> None:
    assert math.isnan(catalogue_coverage(np.zeros((0, 3), dtype=np.int64), 0))
    assert catalogue_coverage(np.array([[0, -1]]), 1) == 1.0  # a one-item catalogue, recommended
    assert catalogue_coverage(np.array([[-1, -1]]), 1) == 0.0


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 8), st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_ndcg_is_one_for_a_perfect_list_and_within_bounds(n_relevant: int, k: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    relevant = rng.choice(50, size=n_relevant, replace=False)
    others = np.setdiff1d(np.arange(50), relevant)
    perfect = np.concatenate([relevant, others])[:k]
    shuffled = rng.permutation(np.concatenate([relevant, others[:k]]))[:k]
    indptr = np.array([0, n_relevant, 2 * n_relevant])
    indices = np.concatenate([relevant, relevant])
    hits = hit_matrix(np.stack([perfect, shuffled]), indptr, indices)
    ndcg = ndcg_at_k(hits, np.array([n_relevant, n_relevant]))
    assert ndcg[0] == pytest.approx(1.0)
    assert 0.0 <= ndcg[1] <= 1.0 + 1e-12


def test_a_list_cut_at_the_catalogue_scores_as_the_full_k_list() -> None:
    # Two items in the catalogue, k = 5: the three slots past the catalogue are empty, so misses.
    indptr, indices = np.array([0, 2]), np.array([0, 1])
    cut = ranking_metrics(np.array([[1, 0]]), indptr, indices, 2, k=5)
    padded = ranking_metrics(np.array([[1, 0, -1, -1, -1]]), indptr, indices, 2)
    assert cut == padded
    assert cut["precision"] == pytest.approx(2 / 5) and cut["recall"] == 1.0 and cut["ndcg"] == 1.0


def test_average_precision_by_hand() -> None:
    hits = np.array([[1, 0, 1, 1, 0], [0, 0, 0, 0, 1], [1, 1, 0, 0, 0]], dtype=bool)
    n_relevant = np.array([3, 10, 2])
    # Row 0: (1/1 + 2/3 + 3/4) / min(5, 3); row 1: (1/5) / 5 (ten relevant, capped at k); row 2: (1 + 1) / 2.
    expected = [(1 + 2 / 3 + 3 / 4) / 3, (1 / 5) / 5, 1.0]
    assert average_precision_at_k(hits, n_relevant) == pytest.approx(expected)


def test_sampled_protocol_by_hand_and_ties_count_against() -> None:
    positives = np.array([0.9, 0.5, 0.1, 0.4])
    negatives = np.array([[0.1, 0.2, 0.3], [0.6, 0.7, 0.1], [0.5, 0.6, 0.7], [0.4, 0.0, 0.0]])
    m = sampled_metrics(positives, negatives, k=2)
    # Ranks (0-based): 0, 2, 3, and 1 for the tie (a tied negative ranks above). Hits at k=2: cases 0 and 3.
    assert m["n_cases"] == 4
    assert m["hit_rate"] == pytest.approx(0.5)
    assert m["ndcg"] == pytest.approx((1.0 + 1 / math.log2(3)) / 4)
    assert math.isnan(sampled_metrics(np.zeros(0), np.zeros((0, 3)), 2)["ndcg"])
