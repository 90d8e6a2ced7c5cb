"""Negative sampling: items drawn uniformly from those a user never interacted with, never a positive.

Used by BPR (``numba_bpr``) and by NCF-style training of the deep models (``sampled``). A user's positives are
a sorted CSR row ``seen[indptr[u]:indptr[u + 1]]``; the r-th unobserved item (0-based, r uniform below the
number of unobserved items) is found by one binary search over that row, with no rejection loop, so a user who
interacted with almost every item costs no more than one with a few, and the draw is exactly uniform over the
unobserved items. A user with no unobserved item gets -1.

Random numbers come from a counter-based generator (SplitMix64 of ``salt + sample number``), so a draw depends
only on the salt and its position, never on which thread made it: the draws are the same with any number of
threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

import deepmf.training.engines.numba_mf  # noqa: F401 - sets numba's threading layer before a parallel kernel runs
from deepmf.errors import DataError

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, inline="always")
def splitmix64(counter: np.uint64) -> np.uint64:  # pragma: no cover - compiled
    """SplitMix64's output for ``counter`` (Steele et al. 2014): a well-mixed 64-bit number per counter."""
    z = counter + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


@njit(cache=True, inline="always")
def draw_unseen(indptr, seen, user, n_items, random):  # pragma: no cover - compiled
    """The item of rank ``random mod n_unobserved`` among the items not in ``user``'s sorted row, or -1.

    Item ``s[t]`` has ``s[t] - t`` unobserved items below it (``s`` the user's sorted positives), a
    non-decreasing count; the r-th unobserved item is ``r + t`` for the first ``t`` whose count exceeds r.
    """
    start = indptr[user]
    n_seen = indptr[user + 1] - start
    n_unseen = n_items - n_seen
    if n_unseen <= 0:
        return -1
    rank = np.int64(random % np.uint64(n_unseen))
    low, high = 0, n_seen
    while low < high:
        middle = (low + high) >> 1
        if seen[start + middle] - middle > rank:
            high = middle
        else:
            low = middle + 1
    return rank + low


@njit(parallel=True, cache=True)
def draw_negatives(indptr, seen, users, n_items, salt):  # pragma: no cover - compiled
    """One unobserved item per entry of ``users`` (int32; -1 for a user who has every item).

    Args:
        indptr: int64 CSR offsets of the positives, length n_users + 1.
        seen: int32 positives, sorted within each user's row, no repeats.
        users: int32/int64 user of each draw.
        n_items: size of the catalogue.
        salt: uint64; draw s uses ``splitmix64(salt + s)``.
    """
    out = np.empty(len(users), dtype=np.int32)
    for s in prange(len(users)):
        out[s] = draw_unseen(indptr, seen, users[s], n_items, splitmix64(salt + np.uint64(s)))
    return out


@njit(parallel=True, cache=True)
def draw_distinct_negatives(indptr, seen, users, n_items, m, salt):  # pragma: no cover - compiled
    """``m`` distinct unobserved items per entry of ``users`` (int32, shape (len(users), m)), for evaluation.

    A user with at most ``m`` unobserved items gets all of them, in item order, then -1 padding; otherwise
    ``m`` draws as ``draw_unseen``'s, a repeat of an earlier draw of the same row being drawn again. Draw s of
    row r uses ``splitmix64(salt + r * 2**20 + s)``.
    """
    out = np.full((len(users), m), -1, dtype=np.int32)
    for r in prange(len(users)):
        user = users[r]
        start, end = indptr[user], indptr[user + 1]
        if n_items - (end - start) <= m:
            filled, position = 0, start
            for item in range(n_items):
                if position < end and seen[position] == item:
                    position += 1
                else:
                    out[r, filled] = item
                    filled += 1
            continue
        counter = salt + np.uint64(r) * np.uint64(1 << 20)
        filled = 0
        while filled < m:
            item = draw_unseen(indptr, seen, user, n_items, splitmix64(counter))
            counter += np.uint64(1)
            repeat = False
            for j in range(filled):
                if out[r, j] == item:
                    repeat = True
                    break
            if not repeat:
                out[r, filled] = item
                filled += 1
    return out


def positives_csr(users: np.ndarray, items: np.ndarray, n_users: int) -> tuple[np.ndarray, np.ndarray]:
    """(indptr int64, items int32 sorted within each user) of (user, item) pairs, for the samplers.

    Raises:
        DataError: a pair repeats (implicit Ratings hold each pair once; a repeat would break the search).
    """
    order = np.lexsort((items, users))
    sorted_users, sorted_items = users[order], items[order]
    if len(order) > 1 and np.any((sorted_users[1:] == sorted_users[:-1]) & (sorted_items[1:] == sorted_items[:-1])):
        raise DataError("positives must hold each (user, item) pair once")
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    return indptr, np.ascontiguousarray(sorted_items, dtype=np.int32)
