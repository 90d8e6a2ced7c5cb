"""A JSON-ready description of a Ratings object (what ``deepmf info`` prints)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from deepmf.data.ratings import Ratings


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(int(seconds), tz=UTC).strftime("%Y-%m-%d")


def _spread(counts: np.ndarray) -> dict[str, float]:
    return {"min": int(counts.min()), "median": float(np.median(counts)), "max": int(counts.max())}


def scale_record(r: Ratings) -> dict[str, Any]:
    """The rating scale with where it came from: {min, max, step, source, warning}.

    ``source`` is "edition" (a MovieLens edition's own scale), "declared" (``--scale``), "inferred" (spanned
    by the values), "events" (an implicit-feedback log without ratings) or None (Ratings built otherwise);
    ``warning`` is the loader's line about a few ratings far from the rest, or None. For implicit feedback it
    is the scale of the source's ratings (the one ``positive`` was compared with), not the 0..1 of interactions.
    """
    scale = r.meta.get("source_scale") if r.feedback == "implicit" else None
    values = scale if isinstance(scale, dict) else r.scale.to_dict()
    return {**values, "source": r.meta.get("scale_source"), "warning": r.meta.get("scale_warning")}


def scale_text(record: dict[str, Any]) -> str:
    """One line for a human: "1 .. 5 by 1 (inferred from the ratings)"."""
    source = {"edition": "the edition's", "declared": "declared", "inferred": "inferred from the ratings",
              "events": "events without ratings"}
    text = f"{record['min']:g} .. {record['max']:g} by {record['step']:g}"
    return f"{text} ({source[record['source']]})" if record.get("source") in source else text


def describe(r: Ratings) -> dict[str, Any]:
    """Sizes, rating scale, density, date range and side tables of ``r``.

    Keys: name, edition, path, n_ratings, n_users, n_items, rating_min, rating_max (observed), rating_step
    (of the scale), rating_mean, scale {min, max, step, source, warning} (see ``scale_record``), density,
    ratings_per_user / ratings_per_item {min, median, max}, date_first / date_last (UTC dates or None),
    user_id_kind, item_id_kind, side_tables {item_titles, genres (count), genre_names, user_demographics},
    feedback ("explicit" or "implicit"; for implicit feedback "ratings" are interactions and rating_* describe
    their event counts) and positive (the threshold that made interactions of ratings, or None).
    """
    n_cells = r.n_users * r.n_items
    item_table, user_table = r.item_table, r.user_table
    titles = item_table is not None and bool(np.any(item_table.titles != ""))
    n_genres = 0 if item_table is None or item_table.genres is None else int(item_table.genres.shape[1])
    has_time = r.timestamps is not None and len(r) > 0
    return {
        "name": r.name,
        "edition": r.meta.get("edition"),
        "path": r.meta.get("path"),
        "n_ratings": len(r),
        "n_users": r.n_users,
        "n_items": r.n_items,
        "rating_min": float(r.ratings.min()) if len(r) else None,
        "rating_max": float(r.ratings.max()) if len(r) else None,
        "rating_step": r.scale.step,
        "rating_mean": r.global_mean,
        "scale": scale_record(r),
        "density": len(r) / n_cells if n_cells else 0.0,
        "ratings_per_user": _spread(r.user_counts()),
        "ratings_per_item": _spread(r.item_counts()),
        "date_first": _iso(r.timestamps.min()) if has_time else None,
        "date_last": _iso(r.timestamps.max()) if has_time else None,
        "user_id_kind": r.user_ids.kind,
        "item_id_kind": r.item_ids.kind,
        "feedback": r.feedback,
        "positive": r.meta.get("positive") if r.feedback == "implicit" else None,
        "side_tables": {
            "item_titles": titles,
            "genres": n_genres,
            "genre_names": list(item_table.genre_names) if item_table is not None else [],
            "user_demographics": user_table is not None,
        },
    }
