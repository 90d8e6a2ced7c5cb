"""Accuracy and full-ranking metrics of a Recommender on held-out ratings (or interactions, for implicit
feedback: ranking metrics only, by full ranking, or by NCF's sampled protocol when asked for)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepmf.data.ratings import Ratings
from deepmf.data.scale import ScaleBounds, check_values
from deepmf.errors import ConfigError
from deepmf.evaluation.ranking import ranking_metrics, relevant_csr, sampled_metrics
from deepmf.recommender import base
from deepmf.recommender.base import ColdStart
from deepmf.recommender.ranking import Ranking
from deepmf.recommender.results import Evaluation

PROTOCOLS = ("full", "sampled")
# NCF's sampled protocol: each held-out item ranked among 99 items the user never interacted with.
SAMPLED_NEGATIVES = 99


def check_protocol(protocol: str, implicit: bool) -> None:
    """ConfigError for an unknown protocol, or the sampled one asked of a rating model."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if protocol == "sampled" and not implicit:
        raise ConfigError("the sampled protocol ranks implicit feedback; rating models are evaluated in full")


class Evaluating(Ranking):
    """evaluate: rating metrics over every held-out rating, ranking metrics over full top-k lists."""

    def evaluate(
        self,
        ratings: Ratings,
        k: int = 10,
        relevant_threshold: float | None = None,
        cold_start: ColdStart = "bias",
        use_time: bool = True,
        protocol: str = "full",
    ) -> Evaluation:
        """Accuracy and ranking metrics on held-out ratings.

        Rating metrics (RMSE, MAE; accuracy of the most likely class for a classification head) cover every
        held-out rating; cold pairs use the fallback of ``cold_start`` and are counted in ``n_cold``. When the
        held-out ratings have timestamps and the model uses time (``model.uses_time``), each rating is
        predicted at its own time, as in Rendle et al. 2019 and myFM (the day of a rating is part of the
        query); ``scored_at_rating_time`` in the metrics says whether that happened.
        Ranking metrics: each user with training ratings and at least one *relevant* held-out rating
        (rating >= ``relevant_threshold``, default 4 on a 1..5 scale, i.e. 75 % of the way up the scale)
        gets a top-k list over all trained items minus the items they rated in training; precision@k,
        recall@k, NDCG@k and hit rate are averaged over those users, coverage is the share of trained items
        recommended to anyone. Ranking is time-free, like ``recommend``: a top-k list is for no particular day.

        Implicit feedback (``scores_only``): every held-out interaction is relevant and only ranking metrics
        are reported (precision, recall, ndcg, map, hit_rate, coverage), with ``protocol`` "full". With
        ``protocol="sampled"`` (NCF's, He et al. 2017) each held-out (user, item) is instead ranked among
        ``SAMPLED_NEGATIVES`` distinct items drawn uniformly (seed 0) from the trained items the user has no
        training or held-out interaction with (all of them when there are fewer): ``hit_rate`` and ``ndcg``
        at k of that far easier task, labelled ``protocol: "sampled"``; a held-out pair with a cold user or
        item counts as a miss.

        Args:
            ratings: held-out ratings, in any id maps (they are matched by raw id).
            k: list length for ranking metrics.
            relevant_threshold: minimum held-out rating counted as relevant.
            cold_start: "bias" (fallback, counted) or "error" (refuse cold ids).
            use_time: score at the ratings' timestamps when possible (False: as ``predict`` without times).
            protocol: "full" (rank all items) or "sampled" (implicit feedback only; see above).

        Raises:
            ConfigError: k < 1, no ratings, an unknown protocol, or "sampled" for a rating model.
        """
        from deepmf.evaluation.metrics import accuracy, mae, rmse

        self._check_n(k, "k (the ranking list length)")
        if not isinstance(ratings, Ratings):
            raise ConfigError(f"evaluate() takes Ratings (from deepmf.load), not {type(ratings).__name__}")
        if len(ratings) == 0:
            raise ConfigError("cannot evaluate on an empty set of ratings")
        check_protocol(protocol, self.scores_only)
        if self.scores_only:
            return self._evaluate_interactions(ratings, k, cold_start, protocol)
        # A model never scores ratings on another scale than it was trained on (a 7 against 1..5 stars).
        check_values(ratings.ratings, ScaleBounds.of(self.scale, "the model's scale", step=False),
                     lambda row: f"{ratings.name or 'ratings'}: row {row + 1}")
        threshold = self.default_relevant() if relevant_threshold is None else float(relevant_threshold)
        users = self._lookup(
            ratings.user_ids.raw(ratings.users), self.user_ids, self._trained_users, cold_start
        )
        items = self._lookup(
            ratings.item_ids.raw(ratings.items), self.item_ids, self._trained_items, cold_start
        )
        actual = np.asarray(ratings.ratings, dtype=np.float32)
        timed = use_time and ratings.timestamps is not None and self.model.uses_time
        predicted, cold = self._predict_indices(users, items, ratings.timestamps if timed else None)
        metrics: dict[str, Any] = {
            "n_ratings": len(actual),
            "n_cold": int((cold > 0).sum()),
            "rmse": float(rmse(predicted, actual)),
            "mae": float(mae(predicted, actual)),
            "scored_at_rating_time": timed,
        }
        if self.model.head == "classification":
            # Both readings of a classifier: the expected rating (rmse/mae above) and the most likely class.
            most_likely = self._most_likely(users, items, cold)
            metrics["accuracy"] = float(accuracy(most_likely, actual))
            metrics["rmse_most_likely"] = float(rmse(most_likely, actual))
            metrics["mae_most_likely"] = float(mae(most_likely, actual))
        metrics.update(k=k, relevant_threshold=threshold)
        metrics.update(self._ranking(users, items, actual >= threshold, k))
        return Evaluation(metrics, actual, predicted)

    def _evaluate_interactions(self, ratings: Ratings, k: int, cold_start: ColdStart,
                               protocol: str) -> Evaluation:
        """Ranking metrics of an implicit-feedback model: every held-out row is a relevant interaction."""
        users = self._lookup(ratings.user_ids.raw(ratings.users), self.user_ids, self._trained_users, cold_start)
        items = self._lookup(ratings.item_ids.raw(ratings.items), self.item_ids, self._trained_items, cold_start)
        metrics: dict[str, Any] = {"n_ratings": len(users), "n_cold": int(((users < 0) | (items < 0)).sum()),
                                   "k": k, "protocol": protocol}
        if protocol == "sampled":
            metrics.update(self._sampled(users, items, k), negatives=SAMPLED_NEGATIVES)
        else:
            metrics.update(self._ranking(users, items, np.ones(len(users), dtype=bool), k))
        empty = np.zeros(0, dtype=np.float32)
        return Evaluation(metrics, empty, empty)

    def _sampled(self, users: np.ndarray, items: np.ndarray, k: int) -> dict[str, Any]:
        """NCF's HR@k and NDCG@k: each warm held-out pair against its own sampled negatives."""
        from deepmf.training.engines.negatives import draw_distinct_negatives, positives_csr

        warm = (users >= 0) & (items >= 0)
        # Draw in the index space of trained items, excluding each user's training and held-out items.
        trained = np.flatnonzero(self._trained_items)
        compact = np.full(self.n_items, -1, dtype=np.int64)
        compact[trained] = np.arange(len(trained))
        seen_users = np.concatenate([self.seen.user_of_each_rating(), users[warm]])
        seen_items = compact[np.concatenate([self.seen.items, items[warm]])]
        pairs = np.unique(np.stack([seen_users, seen_items])[:, seen_items >= 0], axis=1)
        indptr, sorted_items = positives_csr(pairs[0], pairs[1], self.n_users)
        drawn = draw_distinct_negatives(indptr, sorted_items, users[warm], len(trained), SAMPLED_NEGATIVES,
                                        np.uint64(0))
        negatives = np.where(drawn >= 0, trained[np.maximum(drawn, 0)], 0)
        positive_scores = self._pair_scores(users[warm], items[warm])
        case_users = np.repeat(users[warm], SAMPLED_NEGATIVES)
        negative_scores = self._pair_scores(case_users, negatives.reshape(-1)).reshape(negatives.shape)
        negative_scores[drawn < 0] = -np.inf  # fewer unobserved items than negatives: the slot is empty
        result = sampled_metrics(positive_scores, negative_scores, k)
        # Cold pairs are misses: they join the cases with hit and NDCG 0.
        n_cases = len(users)
        for key in ("hit_rate", "ndcg"):
            result[key] = result[key] * result["n_cases"] / n_cases if result["n_cases"] else 0.0
        result["n_cases"] = n_cases
        return result

    def _pair_scores(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The model's scores of warm index pairs, in batches, as float64."""
        device = self.device
        return self.model.predict_in_batches(torch.from_numpy(users.astype(np.int64)).to(device),
                                             torch.from_numpy(items.astype(np.int64)).to(device)
                                             ).double().cpu().numpy()

    def default_relevant(self) -> float:
        """Relevance threshold: 4 on a 1..5 scale, the same relative position on other scales (snapped)."""
        value = self.scale.minimum + 0.75 * (self.scale.maximum - self.scale.minimum)
        return float(
            self.scale.minimum + round((value - self.scale.minimum) / self.scale.step) * self.scale.step
        )

    def _most_likely(self, users: np.ndarray, items: np.ndarray, cold: np.ndarray) -> np.ndarray:
        """Most likely class's rating per pair (classification head); cold pairs use the rounded fallback."""
        out = np.empty(len(users), dtype=np.float32)
        warm = np.flatnonzero(cold == 0)
        device = self.device
        for start in range(0, len(warm), base.MATMUL_CELLS):
            rows = warm[start : start + base.MATMUL_CELLS]
            out[rows] = (
                self.model.predict_most_likely(
                    torch.from_numpy(users[rows]).to(device), torch.from_numpy(items[rows]).to(device)
                )
                .float()
                .cpu()
            )
        cold_rows = np.flatnonzero(cold)
        if len(cold_rows):
            fallback, _ = self._predict_indices(users[cold_rows], items[cold_rows])
            out[cold_rows] = self.scale.class_values()[self.scale.to_class(fallback)]
        return out

    def _ranking(self, users: np.ndarray, items: np.ndarray, relevant: np.ndarray, k: int) -> dict[str, Any]:
        ranked_users = np.unique(users[relevant & (users >= 0)])
        row_of_user = np.full(self.n_users, -1, dtype=np.int64)
        row_of_user[ranked_users] = np.arange(len(ranked_users))
        keep = relevant & (users >= 0)
        indptr, indices = relevant_csr(row_of_user[users[keep]], items[keep], len(ranked_users))
        # Relevant test items the model never trained on stay in the denominator: they are honest misses.
        top = [items_chunk for items_chunk, _ in self._top_k(ranked_users, k, exclude_seen=True)]
        top_items = np.concatenate(top) if top else np.zeros((0, k), dtype=np.int64)
        # They get index n_items, which no list contains.
        metrics = ranking_metrics(
            top_items, indptr, np.where(indices < 0, self.n_items, indices), int(self._trained_items.sum()), k=k
        )
        metrics["n_ranked_users"] = metrics.pop("n_users")
        return metrics

