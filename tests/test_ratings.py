"""Ratings and RatingScale: construction, scale detection, subsets and tensors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from deepmf.data.ratings import Ratings, RatingScale
from deepmf.errors import DataError


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user": ["u2", "u1", "u2", "u3"],
            "item": [7, 5, 5, 9],
            "rating": [4.0, 3.0, 5.0, 1.0],
            "ts": [30, 10, 20, 40],
        }
    )


def test_from_frame_codes_and_maps() -> None:
    r = Ratings.from_frame(_frame(), time_col="ts", name="toy")
    assert (len(r), r.n_users, r.n_items) == (4, 3, 3)
    assert r.users.tolist() == [1, 0, 1, 2] and r.items.tolist() == [1, 0, 0, 2]
    assert r.users.dtype == np.int32 and r.ratings.dtype == np.float32 and r.timestamps.dtype == np.int64
    assert r.global_mean == pytest.approx(13.0 / 4)
    assert r.user_counts().tolist() == [1, 2, 1] and r.item_counts().tolist() == [2, 1, 1]
    assert r.scale == RatingScale(1.0, 5.0, 1.0)


def test_subset_shares_maps_and_to_frame_round_trips() -> None:
    r = Ratings.from_frame(_frame(), time_col="ts")
    part = r.subset(np.array([False, True, True, False]))
    assert part.user_ids is r.user_ids and part.n_items == 3 and len(part) == 2
    assert part.timestamps.tolist() == [10, 20]
    frame = r.to_frame()
    assert frame["user"].tolist() == ["u2", "u1", "u2", "u3"] and frame["item"].tolist() == [7, 5, 5, 9]
    assert frame["timestamp"].tolist() == [30, 10, 20, 40]


def test_to_tensors() -> None:
    t = Ratings.from_frame(_frame()).to("cpu")
    assert t.users.dtype == torch.int64 and t.ratings.dtype == torch.float32 and len(t) == 4
    assert t.items.tolist() == [1, 0, 0, 2]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2, 5], (1.0, 5.0, 1.0)),
        ([0.5, 4.0, 5.0], (0.5, 5.0, 0.5)),
        ([1.25, 2.0], (1.25, 2.0, 0.25)),
        ([0.1234, 0.5], (0.1234, 0.5, 0.01)),
    ],
)
def test_scale_detection(values: list[float], expected: tuple[float, float, float]) -> None:
    scale = RatingScale.detect(np.array(values, dtype=np.float32))
    assert (scale.minimum, scale.maximum, scale.step) == pytest.approx(expected)


def test_scale_classes() -> None:
    half = RatingScale(0.5, 5.0, 0.5)
    assert half.n_classes == 10
    assert half.class_values().tolist() == [0.5 * k for k in range(1, 11)]
    assert half.to_class(np.array([0.5, 3.0, 5.0])).tolist() == [0, 5, 9]
    assert RatingScale.from_dict(half.to_dict()) == half
    with pytest.raises(DataError):
        RatingScale.detect(np.array([], dtype=np.float32))


def test_mismatched_lengths_refused() -> None:
    r = Ratings.from_frame(_frame())
    with pytest.raises(DataError, match="same length"):
        Ratings(r.users, r.items[:2], r.ratings, r.user_ids, r.item_ids, r.scale)
    with pytest.raises(DataError, match="no ratings"):
        Ratings.from_frame(_frame().iloc[:0], name="empty")
