"""Top-k ranking metrics on held-out ratings: precision@k, recall@k, NDCG@k, MAP@k, hit rate, catalogue coverage;
and the sampled-negative protocol of NCF, kept apart and labelled.

Everything is vectorised over users. A recommendation list is a row of item indices, best first, padded with
-1 when fewer than k items could be recommended; the held-out relevant items of each row are given in CSR form
(``indptr``, ``indices``), so no Python loop runs over users or items.

Definitions (binary relevance; "relevant" is decided by the caller, by default a test rating >= 4):

- precision@k = hits in the top k / k (a short list still divides by k: empty slots are misses);
- recall@k = hits in the top k / number of relevant items of the user;
- NDCG@k = DCG / ideal DCG, DCG = sum over ranks j = 1..k of rel_j / log2(j + 1), the ideal list putting
  min(k, n_relevant) relevant items first;
- MAP@k = mean over users of AP@k = sum over ranks j = 1..k of precision@j x rel_j / min(k, n_relevant) (the
  denominator of Rendle's and the ``implicit`` library's definition: a perfect list scores 1 even when the user
  has more than k relevant items);
- hit rate = share of users with at least one hit;
- coverage = distinct items recommended to anyone / size of the catalogue.

The sampled protocol (``sampled_metrics``, He et al. 2017) ranks each held-out item among a few sampled items
instead of the whole catalogue. It is far easier than full ranking (Krichene and Rendle 2020 showed that it can
even reorder models), so it is only computed when asked for and its results say ``"protocol": "sampled"``.
"""

from __future__ import annotations

import numpy as np

PAD = -1


def relevant_csr(rows: np.ndarray, items: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Group (row, item) pairs into CSR form: ``indices[indptr[r]:indptr[r + 1]]`` are row r's items.

    Args:
        rows: row number (0..n_rows-1) of each pair.
        items: item index of each pair.
        n_rows: number of rows.

    Returns:
        ``(indptr, indices)``: int64 offsets of length n_rows + 1 and the items sorted by row.
    """
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows, kind="stable")
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_rows), out=indptr[1:])
    return indptr, np.asarray(items, dtype=np.int64)[order]


def hit_matrix(top_items: np.ndarray, indptr: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Boolean (n_rows, k) matrix: is the item at rank j of row r one of row r's relevant items.

    Args:
        top_items: (n_rows, k) item indices, best first, -1 for empty slots.
        indptr: CSR offsets of the relevant items, length n_rows + 1.
        indices: relevant item indices (non-negative), grouped by row.
    """
    top_items = np.asarray(top_items, dtype=np.int64)
    n_rows = top_items.shape[0]
    if n_rows == 0 or top_items.shape[1] == 0:
        return np.zeros(top_items.shape, dtype=bool)
    # One key per (row, item) pair turns the per-row set test into a single vectorised membership test.
    width = int(max(top_items.max(initial=0), np.max(indices, initial=0))) + 1
    relevant_rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(indptr))
    relevant_keys = relevant_rows * width + indices
    top_keys = np.arange(n_rows, dtype=np.int64)[:, None] * width + top_items
    return np.isin(top_keys, relevant_keys) & (top_items != PAD)


def precision_at_k(hits: np.ndarray, k: int | None = None) -> np.ndarray:
    """Per-row precision@k from a (n_rows, width) hit matrix; ``k`` >= width counts missing slots as misses."""
    return hits.sum(axis=1) / (hits.shape[1] if k is None else k)


def recall_at_k(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Per-row recall@k; rows must have at least one relevant item."""
    return hits.sum(axis=1) / np.asarray(n_relevant, dtype=np.float64)


def ndcg_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int | None = None) -> np.ndarray:
    """Per-row NDCG@k with binary relevance; rows must have at least one relevant item.

    ``k`` may exceed the hit matrix's width (a list cut at the catalogue size): the ideal list still holds
    ``min(k, n_relevant)`` items, and no table longer than the data is allocated.
    """
    width = hits.shape[1]
    n_ideal = np.minimum(np.asarray(n_relevant, dtype=np.int64), width if k is None else k)
    discounts = 1.0 / np.log2(np.arange(2, max(width, int(n_ideal.max(initial=0))) + 2, dtype=np.float64))
    dcg = hits @ discounts[:width]
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[n_ideal]
    return dcg / ideal


def average_precision_at_k(hits: np.ndarray, n_relevant: np.ndarray, k: int | None = None) -> np.ndarray:
    """Per-row AP@k: sum of precision@j at each hit rank j, over min(k, n_relevant); rows need a relevant item.

    ``k`` may exceed the hit matrix's width (a list cut at the catalogue size); default the width.
    """
    width = hits.shape[1]
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, width + 1, dtype=np.float64)
    n_ideal = np.minimum(np.asarray(n_relevant, dtype=np.int64), width if k is None else k)
    return (precision_at * hits).sum(axis=1) / n_ideal


def hit_rate(hits: np.ndarray) -> np.ndarray:
    """Per-row 1.0 when the top k hold at least one relevant item, else 0.0."""
    return hits.any(axis=1).astype(np.float64)


def catalogue_coverage(top_items: np.ndarray, n_catalogue: int) -> float:
    """Share of the catalogue that appears in at least one recommendation list."""
    top_items = np.asarray(top_items)
    if n_catalogue <= 0:
        return float("nan")
    return len(np.unique(top_items[top_items != PAD])) / n_catalogue


def ranking_metrics(top_items: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
                    n_catalogue: int, k: int | None = None) -> dict[str, float]:
    """Mean ranking metrics over the rows that have at least one relevant item.

    Args:
        top_items: (n_rows, width) recommended item indices, best first, -1 for empty slots.
        indptr: CSR offsets of each row's relevant items (length n_rows + 1).
        indices: the relevant items, grouped by row.
        n_catalogue: number of items that could have been recommended (for coverage).
        k: the list length asked for, when longer than ``width`` (slots past the catalogue are misses);
            default ``width``.

    Returns:
        ``precision``, ``recall``, ``ndcg``, ``map``, ``hit_rate`` (means over rows with a relevant item; NaN
        when there is none), ``coverage`` (over all rows) and ``n_users`` (rows averaged over).
    """
    top_items = np.asarray(top_items, dtype=np.int64)
    n_relevant = np.diff(indptr)
    hits = hit_matrix(top_items, indptr, indices)
    keep = n_relevant > 0
    hits, n_relevant = hits[keep], n_relevant[keep]
    result: dict[str, float] = {}
    for name, values in (("precision", precision_at_k(hits, k)), ("recall", recall_at_k(hits, n_relevant)),
                         ("ndcg", ndcg_at_k(hits, n_relevant, k)), ("map", average_precision_at_k(hits, n_relevant, k)),
                         ("hit_rate", hit_rate(hits))):
        result[name] = float(values.mean()) if len(values) else float("nan")
    result["coverage"] = catalogue_coverage(top_items, n_catalogue)
    result["n_users"] = int(keep.sum())
    return result


def sampled_metrics(positive_scores: np.ndarray, negative_scores: np.ndarray, k: int) -> dict[str, float]:
    """HR@k and NDCG@k of NCF's sampled protocol: each held-out item ranked among its own sampled negatives.

    A negative that scores the same as the held-out item counts as ranked above it, so ties never flatter.

    Args:
        positive_scores: (n,) score of each held-out (user, item) case.
        negative_scores: (n, m) scores of the m items sampled for that case (items the user never interacted
            with).
        k: cut-off.

    Returns:
        ``hit_rate`` (share of cases ranked in the top k of m + 1), ``ndcg`` (1 / log2(rank + 1) for those,
        0 otherwise), ``n_cases``; NaN metrics when there is no case.
    """
    positive_scores = np.asarray(positive_scores, dtype=np.float64)
    if len(positive_scores) == 0:
        return {"hit_rate": float("nan"), "ndcg": float("nan"), "n_cases": 0}
    negative_scores = np.asarray(negative_scores, dtype=np.float64).reshape(len(positive_scores), -1)
    above = (negative_scores >= positive_scores[:, None]).sum(axis=1)  # 0-based rank of the held-out item
    hit = above < k
    return {"hit_rate": float(hit.mean()), "ndcg": float(np.where(hit, 1.0 / np.log2(above + 2.0), 0.0).mean()),
            "n_cases": len(positive_scores)}
