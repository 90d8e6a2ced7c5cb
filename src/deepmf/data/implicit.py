"""Implicit feedback: interactions (plays, clicks, purchases, or ratings at or above a threshold) as Ratings.

An implicit ``Ratings`` (``feedback="implicit"``) has one row per (user, item) pair that the user interacted
with; its ``ratings`` column is the pair's weight, the number of events that made it (1 for every pair of a
thresholded rating file, the count of repeated events in a log), which iALS reads as confidence. Every other
pair is unobserved, not negative. Its ``scale`` is ``IMPLICIT_SCALE`` (0..1: interacted or not); the source's
own scale and the threshold are kept in ``meta`` (``source_scale``, ``positive``).

Two ways in: ``to_implicit(ratings, positive)`` turns loaded ratings into interactions, keeping only ratings
``>= positive`` when a threshold is given; ``implicit_from_raw`` does the same for a user's file read with
``rating_optional`` (a log of ``user,item[,timestamp]`` events whose repeats become counts). The id maps are
built on every row of the source, so a user whose ratings are all below the threshold is still known (and
cold: no training interaction).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from deepmf.data.files import RawRatings, code_ids
from deepmf.data.idmap import IdMap
from deepmf.data.ratings import Ratings, RatingScale
from deepmf.errors import ConfigError, DataError

IMPLICIT_SCALE = RatingScale(0.0, 1.0, 1.0)


def to_implicit(ratings: Ratings, positive: float | None = None) -> Ratings:
    """Interactions from ``ratings``: every row, or the rows rated ``>= positive``; repeated pairs merged.

    Args:
        ratings: loaded ratings (explicit), possibly with repeated (user, item) rows (an event log).
        positive: the lowest rating that counts as a positive interaction; None: every row counts.

    Returns:
        Ratings with ``feedback="implicit"``, one row per pair in order of first appearance, weight = number
        of (kept) rows of the pair, timestamp = the pair's latest; same id maps, side tables and name.

    Raises:
        ConfigError: ``positive`` is not a finite number, or the ratings are implicit already.
        DataError: no rating reaches ``positive``.
    """
    if ratings.feedback == "implicit":
        raise ConfigError(f"{ratings.name or 'ratings'}: already implicit feedback")
    if positive is not None and not (isinstance(positive, (int, float)) and np.isfinite(positive)):
        raise ConfigError(f"positive must be a rating value, got {positive!r}")
    keep = np.ones(len(ratings), dtype=bool) if positive is None else ratings.ratings >= positive - 1e-6
    if not keep.any():
        raise DataError(
            f"{ratings.name or 'ratings'}: no rating is >= {positive:g} (ratings run "
            f"{ratings.scale.minimum:g}..{ratings.scale.maximum:g}); lower --positive"
        )
    users, items = ratings.users[keep], ratings.items[keep]
    times = None if ratings.timestamps is None else ratings.timestamps[keep]
    key = users.astype(np.int64) * ratings.n_items + items
    codes, uniques = pd.factorize(key)  # pair number in order of first appearance
    first = np.full(len(uniques), len(key), dtype=np.int64)
    np.minimum.at(first, codes, np.arange(len(key)))
    weights = np.bincount(codes, minlength=len(uniques)).astype(np.float32)
    if times is not None and len(uniques) < len(key):
        latest = np.full(len(uniques), np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(latest, codes, times)
        times = latest
    elif times is not None:
        times = times[first]
    meta = {**ratings.meta, "positive": None if positive is None else float(positive),
            "source_scale": ratings.scale.to_dict()}
    return replace(ratings, users=users[first], items=items[first], ratings=weights, timestamps=times,
                   scale=IMPLICIT_SCALE, meta=meta, feedback="implicit")


def implicit_from_raw(raw: RawRatings, positive: float | None, name: str, user_ids: IdMap | None = None,
                      item_ids: IdMap | None = None) -> Ratings:
    """Interactions from a user's file read with ``rating_optional`` (its rows may repeat a pair).

    Args:
        raw: the file's validated columns.
        positive: as ``to_implicit``.
        name: ``Ratings.name``.
        user_ids, item_ids: maps to code the ids with (every id must be in them); None: built from ``raw``.

    Raises:
        ConfigError: ``positive`` is given but the file has no rating column.
        DataError: as ``to_implicit``; an id missing from a given map.
    """
    if positive is not None and raw.ratings_missing:
        raise ConfigError(f"{raw.path}: --positive needs a rating column, and the file has none")
    user_ids, users, item_ids, items = code_ids(raw, user_ids, item_ids)
    # The scale only describes the source here (to_implicit keeps it in meta): no duplicate or scale check.
    scale = IMPLICIT_SCALE if raw.ratings_missing else RatingScale.detect(raw.ratings)
    if scale.maximum <= scale.minimum:
        scale = RatingScale(scale.minimum, scale.minimum + scale.step, scale.step)
    events = Ratings(users, items, raw.ratings, user_ids, item_ids, scale, timestamps=raw.timestamps, name=name)
    return to_implicit(events, positive)
