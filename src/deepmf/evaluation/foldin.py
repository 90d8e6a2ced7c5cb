"""How good is a fold-in? Held-out users folded in from half their ratings, against retraining and the fallback.

The protocol (issue 14): take ``n_users`` users of a training part out of training entirely and train; fold
each of them in from a random half of his ratings and predict the other half. Compare the RMSE on those other
halves with (a) a model retrained with the first halves included (what fold-in approximates) and (b) the
``cold_start="bias"`` fallback of the model that never saw them (what a service answers without fold-in).
Test ratings of the split are never read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from deepmf.data.ratings import Ratings
from deepmf.evaluation.metrics import rmse


@dataclass(frozen=True)
class FoldInCheck:
    """RMSE on the held-out users' second halves: fold-in, retrained, and bias fallback."""

    model: str
    n_users: int
    n_folded: int
    n_scored: int
    fold_in: float
    retrained: float
    bias: float
    fold_in_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def held_out_halves(train: Ratings, n_users: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pick ``n_users`` users with at least 2 ratings and halve each one's ratings at random.

    Returns:
        (user indices, boolean mask of the ratings of the users' first halves, mask of their second halves),
        masks over ``train``'s rows.
    """
    rng = np.random.default_rng(seed)
    counts = train.user_counts()
    users = np.sort(rng.choice(np.flatnonzero(counts >= 2), size=n_users, replace=False))
    first = np.zeros(len(train), dtype=bool)
    second = np.zeros(len(train), dtype=bool)
    for user in users:
        rows = rng.permutation(np.flatnonzero(train.users == user))
        first[rows[: len(rows) // 2]] = True
        second[rows[len(rows) // 2 :]] = True
    return users, first, second


def check_fold_in(train: Ratings, model: str = "mf", n_users: int = 50, seed: int = 0,
                  **options: Any) -> FoldInCheck:
    """Run the protocol above for one model (``options`` as in ``deepmf.fit``: model and training options)."""
    import time

    from deepmf.api import fit

    users, first, second = held_out_halves(train, n_users, seed)
    held = first | second
    without = fit(train.subset(~held), model=model, seed=seed, **options)
    retrained = fit(train.subset(~second), model=model, seed=seed, **options)
    truth = train.ratings[second]
    raw_users = train.user_ids.raw(train.users[second])
    raw_items = train.item_ids.raw(train.items[second])
    trained_items = without.seen.item_counts() > 0
    index = without.item_ids.indices(raw_items, missing="none")
    known_items = (index >= 0) & trained_items[np.maximum(index, 0)]
    folded = np.empty(len(truth), dtype=np.float32)
    seconds = 0.0
    for user in users:
        mine = train.users == user
        start = time.perf_counter()
        new_user = without.fold_in(pd.DataFrame({"item": train.item_ids.raw(train.items[mine & first]),
                                                 "rating": train.ratings[mine & first]}))
        seconds += time.perf_counter() - start
        targets = mine[second]
        # Items only the held-out users rated are unknown to the model without them: the bias fallback
        # answers those for fold-in too, and they are counted, not skipped.
        known = known_items[targets]
        answer = without.predict_many(raw_users[targets], raw_items[targets], cold_start="bias")
        answer[known] = without.predict_new_user(new_user, raw_items[targets][known])
        folded[targets] = answer
    return FoldInCheck(
        model=model,
        n_users=n_users,
        n_folded=int(first.sum()),
        n_scored=len(truth),
        fold_in=float(rmse(folded, truth)),
        retrained=float(rmse(retrained.predict_many(raw_users, raw_items, cold_start="bias"), truth)),
        bias=float(rmse(without.predict_many(raw_users, raw_items, cold_start="bias"), truth)),
        fold_in_seconds=seconds / n_users,
    )
