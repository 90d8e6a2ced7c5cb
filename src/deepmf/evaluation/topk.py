"""Full-ranking metrics of a model on held-out interactions in index space (training-time validation).

``HeldOutRanking(train, held_out, k)`` is built once; calling it with a model ranks, for every user with a
held-out interaction, all items that have a training interaction minus the user's own training items, and
returns ``ranking_metrics`` of the top k. The Trainer uses it to validate implicit-feedback models each epoch
(early stopping and tuning read its NDCG), on validation interactions carved from the training part. The
Recommender's ``evaluate`` does the same on test data in raw ids.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from deepmf.evaluation.ranking import ranking_metrics, relevant_csr

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.base import RatingModel

# (user, item) cells scored per chunk: a deep model's forward pass over the grid holds activations per cell.
CHUNK_CELLS = 1 << 17


class HeldOutRanking:
    """Ranking metrics of models on ``held_out`` given ``train`` (same id maps); see the module docstring.

    Args:
        train: the interactions the model learned (excluded from each user's ranking).
        held_out: the interactions to find (every row is relevant).
        k: list length.
    """

    def __init__(self, train: Ratings, held_out: Ratings, k: int = 10) -> None:
        self.k = k
        self.n_items = train.n_items
        self.users = np.unique(held_out.users).astype(np.int64)
        row_of_user = np.full(train.n_users, -1, dtype=np.int64)
        row_of_user[self.users] = np.arange(len(self.users))
        self.indptr, self.relevant = relevant_csr(row_of_user[held_out.users], held_out.items, len(self.users))
        trained = np.bincount(train.items, minlength=train.n_items) > 0
        self.untrained = torch.from_numpy(np.flatnonzero(~trained))
        self.n_catalogue = int(trained.sum())
        # Each ranked user's training items, as (row among self.users, item) pairs.
        keep = row_of_user[train.users] >= 0
        self.seen_rows = row_of_user[train.users[keep]]
        self.seen_items = train.items[keep].astype(np.int64)

    @torch.no_grad()
    def top_items(self, model: RatingModel) -> np.ndarray:
        """(n_users, k) item indices ranked by ``model`` for each held-out user, -1 where fewer items remain."""
        device = next(iter(model.state_dict().values())).device
        was_training = model.training
        model.eval()
        chunk = max(1, CHUNK_CELLS // max(1, self.n_items))
        width = min(self.k, self.n_catalogue)
        out = np.full((len(self.users), self.k), -1, dtype=np.int64)
        order = np.argsort(self.seen_rows, kind="stable")
        seen_rows, seen_items = self.seen_rows[order], self.seen_items[order]
        bounds = np.searchsorted(seen_rows, np.arange(0, len(self.users) + chunk, chunk))
        untrained = self.untrained.to(device)
        for block, start in enumerate(range(0, len(self.users), chunk)):
            users = torch.from_numpy(self.users[start:start + chunk]).to(device)
            scores = model.score_all_items(users).float()
            scores[:, untrained] = -math.inf
            low, high = bounds[block], bounds[block + 1]
            scores[torch.from_numpy(seen_rows[low:high] - start).to(device),
                   torch.from_numpy(seen_items[low:high]).to(device)] = -math.inf
            top_scores, top = torch.topk(scores, width, dim=1)
            top = top.cpu().numpy()
            top[~np.isfinite(top_scores.cpu().numpy())] = -1
            out[start:start + len(users), :width] = top
        model.train(was_training)
        return out

    def __call__(self, model: RatingModel) -> dict[str, float]:
        """``ranking_metrics`` (precision, recall, ndcg, map, hit_rate, coverage, n_users) of ``model``."""
        return ranking_metrics(self.top_items(model), self.indptr, self.relevant, self.n_catalogue)
