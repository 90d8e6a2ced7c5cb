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


def planted_interactions(n_users: int = 200, n_items: int = 100, n_groups: int = 5, per_user: int = 12,
                         stray: float = 0.1, seed: int = 0) -> Ratings:
    """Implicit feedback with a planted structure: users and items fall into ``n_groups`` taste groups.

    Each user interacts with ``per_user`` distinct items, each drawn from the user's own group's items with
    probability ``1 - stray`` and uniformly otherwise; groups are equally large, so every item is about as
    popular as any other and popularity cannot rank well, while a model that finds the groups recommends a
    user's unseen group items (what the tests of implicit models check).

    Returns:
        Implicit Ratings (weight 1 per pair; random timestamps) with ``meta["groups"]`` = (user groups, item
        groups) and ``meta["edition"] = "synthetic"``.

    Raises:
        ConfigError: sizes that do not fit (a group smaller than ``per_user``, groups that do not divide).
    """
    from deepmf.data.implicit import to_implicit

    if n_groups < 1 or n_users % n_groups or n_items % n_groups or n_items // n_groups < per_user:
        raise ConfigError(f"{n_groups} groups must divide {n_users} users and {n_items} items into groups of at "
                          f"least per_user={per_user} items")
    if not 0 <= stray <= 1:
        raise ConfigError(f"stray must be in [0, 1], got {stray!r}")
    rng = np.random.default_rng(seed)
    user_group = np.arange(n_users) % n_groups
    item_group = np.arange(n_items) % n_groups
    users, items = [], []
    for user in range(n_users):
        own = np.flatnonzero(item_group == user_group[user])
        chosen: set[int] = set()
        while len(chosen) < per_user:
            pool = own if rng.random() >= stray else np.arange(n_items)
            chosen.add(int(rng.choice(pool)))
        users += [user] * per_user
        items += sorted(chosen)
    order = rng.permutation(len(users))
    users_arr = np.asarray(users, dtype=np.int32)[order]
    items_arr = np.asarray(items, dtype=np.int32)[order]
    events = Ratings(users_arr, items_arr, np.ones(len(users_arr), dtype=np.float32),
                     IdMap(np.arange(n_users, dtype=np.int64), "int", "user"),
                     IdMap(np.arange(n_items, dtype=np.int64), "int", "item"), RatingScale(0.0, 1.0, 1.0),
                     timestamps=rng.integers(9e8, 1e9, len(users_arr)), name="planted",
                     meta={"edition": "synthetic", "path": None, "groups": (user_group, item_group)})
    return to_implicit(events)
