"""Item co-occurrence counts (the Gram matrix ``X^T X`` of a binary user x item matrix), compiled with Numba.

EASE's solve needs ``X^T X``. Computed from the two CSR views of X (items -> users, users -> items), row ``a``
of the result counts, for every item ``b``, the users who interacted with both: ``sum over users u of a, of
u's items`` adds one per pair, so the work is ``sum_u |I_u|^2`` (the nonzeros it produces), far below a dense
product's ``n_users x m^2``. Rows are independent, so they are filled in parallel without locks. Hand-written
because neither torch (its sparse-sparse product is beta and warns) nor numpy offers a sparse ``X^T X``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def _fill(item_ptr, item_users, user_ptr, user_items, out):  # pragma: no cover - compiled
    for a in prange(out.shape[0]):
        row = out[a]
        for p in range(item_ptr[a], item_ptr[a + 1]):
            u = item_users[p]
            for q in range(user_ptr[u], user_ptr[u + 1]):
                row[user_items[q]] += 1.0


def cooccurrence(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    """``X^T X`` (n_items, n_items, float32) of the binary matrix with ones at the (user, item) pairs given.

    Args:
        users, items: the pairs (each at most once), items in ``0..n_items-1``.
        n_users, n_items: shape of X.
    """
    import deepmf.training.engines.numba_mf  # noqa: F401 - numba's threading layer, set before a parallel run

    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    by_user = np.argsort(users, kind="stable")
    by_item = np.argsort(items, kind="stable")
    user_ptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=user_ptr[1:])
    item_ptr = np.zeros(n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(items, minlength=n_items), out=item_ptr[1:])
    out = np.zeros((n_items, n_items), dtype=np.float32)
    _fill(item_ptr, users[by_item], user_ptr, items[by_user], out)
    return out
