"""Implicit feedback: interactions (plays, clicks, purchases, or ratings at or above a threshold) as Ratings.

An implicit ``Ratings`` (``feedback="implicit"``) has one row per (user, item) pair that the user interacted
with; its ``ratings`` column is the pair's weight, the number of events that made it (1 for every pair of a
thresholded rating file, the count of repeated events in a log), which iALS reads as confidence. Every other
pair is unobserved, not negative. Its ``scale`` is ``IMPLICIT_SCALE`` (0..1: interacted or not); the source's
own scale and the threshold are kept in ``meta`` (``source_scale``, ``positive``).

Two ways in: ``to_implicit(ratings, positive)`` turns loaded ratings into interactions, keeping only ratings
``>= positive`` when a threshold is given; ``implicit_from_raw`` does the same for a user's file or DataFrame
read with ``rating_optional`` (a log of ``user,item[,timestamp]`` events whose repeats become counts). The id
maps are built on every row of the source, so a user whose ratings are all below the threshold is still known
(and cold: no training interaction). A source's rating column, when it has one, follows the same scale rules
as explicit ratings (a declared scale is enforced, an inferred one warns of odd values): the threshold is
compared with those values. An event log has no scale to check.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from deepmf.data.columns import RawRatings
from deepmf.data.files import code_ids, ratings_from_raw
from deepmf.data.idmap import IdMap
from deepmf.data.ratings import FEEDBACKS, Ratings, RatingScale
from deepmf.data.scale import ScaleBounds, inferred_scale, scale_within
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


def implicit_from_raw(raw: RawRatings, positive: float | None, name: str, *, scale: ScaleBounds | None = None,
                      user_ids: IdMap | None = None, item_ids: IdMap | None = None) -> Ratings:
    """Interactions from a user's file or DataFrame read with ``rating_optional`` (its rows may repeat a pair).

    Args:
        raw: the source's validated columns.
        positive: as ``to_implicit``.
        name: ``Ratings.name``.
        scale: the declared scale of the source's rating column (enforced as for explicit ratings); None infers
            it. Refused for an event log, which has no ratings to scale.
        user_ids, item_ids: maps to code the ids with (every id must be in them); None: built from ``raw``.

    Raises:
        ConfigError: ``positive`` or ``scale`` is given but the source has no rating column.
        DataError: as ``to_implicit``; an id missing from a given map; a rating outside a declared scale.
    """
    if raw.ratings_missing:
        for option, given in (("--positive", positive is not None), ("--scale", scale is not None)):
            if given:
                raise ConfigError(f"{raw.source.label}: {option} needs a rating column, and it has none")
        source_scale, scale_source, warning = IMPLICIT_SCALE, "events", None
    elif scale is not None:
        source_scale, scale_source, warning = scale_within(raw, scale), "declared", None
    else:
        (source_scale, warning), scale_source = inferred_scale(raw), "inferred"
    user_ids, users, item_ids, items = code_ids(raw, user_ids, item_ids)
    if source_scale.maximum <= source_scale.minimum:  # every rating alike: a scale of one value would not hold
        source_scale = RatingScale(source_scale.minimum, source_scale.minimum + source_scale.step,
                                   source_scale.step)
    # Repeated pairs are events of one interaction here: to_implicit counts them, no duplicates policy applies.
    events = Ratings(users, items, raw.ratings, user_ids, item_ids, source_scale, timestamps=raw.timestamps,
                     name=name, meta={"scale_source": scale_source, "scale_warning": warning})
    return to_implicit(events, positive)


@dataclass(frozen=True)
class Feedback:
    """What ``load`` makes of the rows: explicit ratings, or implicit interactions (``positive``: threshold)."""

    implicit: bool = False
    positive: float | None = None

    @classmethod
    def of(cls, feedback: object, positive: object, duplicates: str) -> Feedback:
        """Checked ``feedback``/``positive`` options; ConfigError for options that do not go with the feedback."""
        if not isinstance(feedback, str) or feedback not in FEEDBACKS:
            raise ConfigError(f"unknown feedback {feedback!r}; choose one of {', '.join(FEEDBACKS)}")
        implicit = feedback == "implicit"
        if positive is not None and not implicit:
            raise ConfigError("--positive selects implicit positives: add --feedback implicit")
        if positive is not None and (isinstance(positive, bool) or not isinstance(positive, (int, float))):
            raise ConfigError(f"positive must be a rating value, got {positive!r}")
        if implicit and duplicates != "error":
            raise ConfigError("--duplicates applies to explicit ratings; implicit feedback counts repeated events")
        return cls(implicit, None if positive is None else float(positive))

    def from_raw(self, raw: RawRatings, duplicates: str, bounds: ScaleBounds | None, name: str) -> Ratings:
        """Ratings (or interactions) from a file's or DataFrame's checked columns."""
        if self.implicit:
            return implicit_from_raw(raw, self.positive, name, scale=bounds)
        return ratings_from_raw(raw, duplicates=duplicates, scale=bounds, name=name)

    def of_loaded(self, ratings: Ratings) -> Ratings:
        """A loaded edition's ratings, made interactions when the feedback is implicit."""
        return to_implicit(ratings, self.positive) if self.implicit else ratings
