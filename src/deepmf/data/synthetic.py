"""Synthetic rating matrices (tutorial 000): pure noise, which no model can learn, vs a low-rank product,
which matrix factorization can recover.

The tutorial's first experiment: a 250 x 250 matrix, either i.i.d. standard normal values ("noise") or the
product of a 250 x 25 and a 25 x 250 standard-normal matrix ("lowrank", values with variance 25), observed at
35,000 random cells of which the first 25,000 train and the last 10,000 evaluate. The defaults reproduce those
sizes. One difference on purpose: the tutorial samples cells with replacement (and so has duplicate cells);
here the cells are distinct, because a rating matrix has one value per (user, item).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from deepmf.data.idmap import IdMap
from deepmf.data.ratings import Ratings, RatingScale
from deepmf.errors import ConfigError

SyntheticKind = Literal["noise", "lowrank"]
# "Learned the structure" means the validation RMSE went at least this share of the way from predicting the mean
# (RMSE = the data's standard deviation) down to the noise floor the generator knows (the RMSE of the true
# low-rank matrix itself). Beating the mean by a few percent, which any model does by fitting the biggest
# factor a little, does not count.
LEARNED_SHARE = 0.5


def synthetic_ratings(
    kind: SyntheticKind = "lowrank",
    n_users: int = 250,
    n_items: int = 250,
    rank: int = 25,
    n_observed: int = 35_000,
    noise: float = 0.0,
    seed: int = 0,
) -> Ratings:
    """Sample ``n_observed`` distinct cells of a synthetic ``n_users x n_items`` matrix as Ratings.

    Args:
        kind: "noise" (i.i.d. N(0, 1) cells: nothing to learn) or "lowrank" (user factors (n_users, rank)
            times item factors (rank, n_items), both N(0, 1)).
        n_users, n_items: matrix shape; every user and item is in the id maps (raw ids 0..n-1), seen or not.
        rank: inner dimension of the low-rank product (ignored for "noise").
        n_observed: number of distinct observed cells.
        noise: standard deviation of Gaussian noise added to the low-rank values.
        seed: the only source of randomness.

    Returns:
        Ratings (float ratings, scale detected from the values) with ``meta["edition"] = "synthetic"`` and the
        generating parameters in ``meta["synthetic"]``; rows are in sampling order, so the first 25,000 / last
        10,000 rows give the tutorial's train/evaluation cut.
    """
    if kind not in ("noise", "lowrank"):
        raise ConfigError(f"unknown synthetic kind {kind!r}; choose noise or lowrank")
    for what, value in (
        ("n_users", n_users),
        ("n_items", n_items),
        ("rank", rank),
        ("n_observed", n_observed),
    ):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{what} must be a positive integer, got {value!r}")
    if n_observed > n_users * n_items:
        raise ConfigError(
            f"n_observed={n_observed} exceeds the {n_users} x {n_items} = {n_users * n_items} cells"
        )
    if not np.isfinite(noise) or noise < 0:
        raise ConfigError(f"noise must be a non-negative number, got {noise!r}")
    rng = np.random.default_rng(seed)
    cells = rng.choice(n_users * n_items, size=n_observed, replace=False)
    users, items = np.divmod(cells, n_items)
    if kind == "noise":
        values = rng.standard_normal(n_observed)
    else:
        user_factors = rng.standard_normal((n_users, rank))
        item_factors = rng.standard_normal((rank, n_items))
        # Only the observed cells are computed: memory O(n_observed * rank), not O(n_users * n_items).
        values = np.einsum("ij,ji->i", user_factors[users], item_factors[:, items])
        if noise > 0:
            values = values + noise * rng.standard_normal(n_observed)
    ratings = values.astype(np.float32)
    user_ids = IdMap(np.arange(n_users, dtype=np.int64), "int", "user")
    item_ids = IdMap(np.arange(n_items, dtype=np.int64), "int", "item")
    return Ratings(
        users.astype(np.int32),
        items.astype(np.int32),
        ratings,
        user_ids,
        item_ids,
        RatingScale.detect(ratings),
        name=f"synthetic-{kind}",
        meta={
            "edition": "synthetic",
            "path": None,
            "synthetic": {
                "kind": kind,
                "n_users": n_users,
                "n_items": n_items,
                "rank": rank,
                "n_observed": n_observed,
                "noise": noise,
                "seed": seed,
            },
        },
    )


def noise_floor(data: Ratings) -> float:
    """The lowest RMSE any model can reach on ``data`` (the standard deviation of its noise), from the generating
    parameters in ``meta["synthetic"]``: 1 for "noise" (every value is noise), ``noise`` for "lowrank".

    Raises:
        ConfigError: ``data`` was not made by ``synthetic_ratings``.
    """
    params = data.meta.get("synthetic")
    if not isinstance(params, dict):
        raise ConfigError(f"{data.name or 'these ratings'} were not generated by synthetic_ratings")
    return 1.0 if params["kind"] == "noise" else float(params["noise"])


def share_learned(rmse: float, data_std: float, floor: float) -> float | None:
    """How far ``rmse`` went from predicting the mean (``data_std``) to the noise ``floor``: 0 = no better than
    the mean, 1 = at the floor. None when there is nothing to learn: the floor is the data's spread (within the
    2 % a sample's standard deviation may stray from the generator's)."""
    if data_std - floor <= 0.02 * data_std:
        return None
    return (data_std - rmse) / (data_std - floor)
