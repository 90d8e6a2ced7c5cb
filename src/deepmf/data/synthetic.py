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
from deepmf.data.splits import check_seed
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
    check_seed(seed)
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


# ---- a MovieLens-shaped stand-in (the demo's data when ML-100K can be neither found nor downloaded) -----------
# Genre shares of ML-100K's films (Drama 43 %, Comedy 30 %, ...), used as the odds of each generated genre.
GENRE_SHARES = {"Drama": 0.43, "Comedy": 0.30, "Action": 0.15, "Thriller": 0.15, "Romance": 0.15,
                "Adventure": 0.08, "Children's": 0.07, "Crime": 0.065, "Sci-Fi": 0.06, "Horror": 0.055,
                "War": 0.04, "Mystery": 0.035, "Musical": 0.033, "Documentary": 0.03, "Animation": 0.025,
                "Western": 0.016, "Film-Noir": 0.014, "Fantasy": 0.013}
_ADJECTIVES = ("Silent", "Last", "Broken", "Golden", "Hidden", "Crimson", "Lonely", "Distant", "Wild", "Secret",
               "Burning", "Frozen", "Midnight", "Little", "Lost", "Electric", "Velvet", "Restless", "Savage",
               "Quiet", "Endless", "Bitter", "Northern", "Paper", "Iron", "Stolen", "Second", "Final", "Hollow",
               "Brave")
_NOUNS = ("Harbor", "River", "Summer", "Garden", "Stranger", "Kingdom", "Promise", "Station", "Highway", "Letter",
          "Mirror", "Island", "Winter", "Frontier", "Witness", "Orchestra", "Detective", "Empire", "Horizon",
          "Journey", "Lantern", "Valley", "Voyage", "Shadow", "Circus", "Signal", "Outlaw", "Hotel", "Machine",
          "Affair")
_PATTERNS = ("The {a} {n}", "{a} {n}", "The {n} of the {m}", "{ns} of the {a} {m}", "A {a} {n}")


def _generated_titles(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct made-up film titles with a year, e.g. "The Silent Harbor (1994)"."""
    combos = [(p, a, b) for p in range(len(_PATTERNS)) for a in range(len(_ADJECTIVES)) for b in range(len(_NOUNS))]
    if n > len(combos):
        raise ConfigError(f"can generate at most {len(combos)} distinct titles, asked for {n}")
    picked = rng.choice(len(combos), size=n, replace=False)
    years = np.minimum(1998, 1999 - np.ceil(rng.exponential(9.0, size=n))).astype(int)  # mostly the 1990s
    titles = []
    for index, year in zip(picked, years, strict=True):
        pattern, a, b = combos[index]
        nouns = (_NOUNS[b], _NOUNS[(a + b + 7) % len(_NOUNS)])
        plural = nouns[0] + ("es" if nouns[0].endswith("s") else "s")
        text = _PATTERNS[pattern].format(a=_ADJECTIVES[a], n=nouns[0], m=nouns[1], ns=plural)
        if text.startswith("A ") and text[2] in "AEIOU":
            text = "An" + text[1:]  # "An Electric Machine"
        titles.append(f"{text} ({year})")
    return np.array(titles, dtype=object)


def movielens_like(n_users: int = 943, n_items: int = 1682, n_ratings: int = 100_000, rank: int = 8,
                   noise: float = 0.85, seed: int = 0) -> Ratings:
    """Generated ratings shaped like ML-100K, clearly labelled as generated (name and ``meta["edition"]``).

    Whole stars 1..5 from a low-rank model with biases, ``round(mu + b_u + b_i + p_u . q_i + noise)``, where
    each item's vector leans towards its genres' (so similar items share genres) and its bias rises with its
    popularity (as on MovieLens, where much-rated films are rated higher); skewed activity (every user rates at
    least 20 items, a few rate hundreds, log-normal) and Zipf-like item popularity; made-up titles with a year;
    one to three of ML-100K's genres per item at ML-100K's rates; timestamps over 1997-98.

    Args:
        n_users, n_items, n_ratings: sizes (ML-100K's by default).
        rank: latent dimension of the generating model.
        noise: standard deviation of the noise before rounding.
        seed: the only source of randomness.

    Raises:
        ConfigError: sizes that cannot hold 20 ratings per user, or more titles than can be made up.
    """
    from deepmf.data.ratings import ItemTable

    if n_users < 1 or n_items < 40 or not 20 * n_users <= n_ratings <= n_users * n_items // 2:
        raise ConfigError(f"need n_items >= 40 and 20 x n_users <= n_ratings <= half the cells, got "
                          f"{n_users} users, {n_items} items, {n_ratings} ratings")
    rng = np.random.default_rng(seed)
    names = tuple(GENRE_SHARES)
    shares = np.array(list(GENRE_SHARES.values()))
    genres = rng.random((n_items, len(names))) < shares
    none = ~genres.any(axis=1)
    genres[none, rng.choice(len(names), size=int(none.sum()), p=shares / shares.sum())] = True
    # Each genre has a direction in taste space; an item is its genres' mean direction plus its own part.
    genre_vectors = rng.normal(0.0, 0.45, (len(names), rank))
    item_factors = genres @ genre_vectors / genres.sum(axis=1, keepdims=True) + rng.normal(0.0, 0.25,
                                                                                          (n_items, rank))
    user_factors = rng.normal(0.0, 0.4, (n_users, rank))
    # Zipf-like popularity over a random order of items; log-normal activity with a floor of 20.
    popularity = 1.0 / (rng.permutation(n_items) + 8.0)
    activity = rng.lognormal(0.0, 1.0, n_users)
    counts = np.minimum(20 + np.floor(activity / activity.sum() * (n_ratings - 20 * n_users)).astype(np.int64),
                        n_items // 2)
    while (missing := n_ratings - int(counts.sum())) > 0:  # the rounding and the cap: hand the rest out
        room = np.flatnonzero(counts < n_items // 2)
        counts[room[np.argsort(-activity[room])][:missing]] += 1
    # Each user's items: weighted sampling without replacement (Gumbel top-k over log popularity).
    keys = np.log(popularity)[None, :] + rng.gumbel(size=(n_users, n_items))
    order = np.argsort(-keys, axis=1)
    users = np.repeat(np.arange(n_users), counts)
    items = np.concatenate([order[u, :k] for u, k in enumerate(counts)])
    log_pop = np.log(np.bincount(items, minlength=n_items) + 1.0)
    item_bias = rng.normal(0.0, 0.45, n_items) + 0.3 * (log_pop - log_pop.mean()) / max(log_pop.std(), 1e-9)
    user_bias = rng.normal(0.0, 0.4, n_users)
    raw = (3.25 + user_bias[users] + item_bias[items] + np.einsum("ij,ij->i", user_factors[users],
                                                                   item_factors[items])
           + rng.normal(0.0, noise, len(users)))
    stars = np.clip(np.rint(raw), 1, 5).astype(np.float32)
    shuffle = rng.permutation(len(users))
    start = 874_724_710  # 1997-09-20, ML-100K's first day; seven months of ratings like its own
    timestamps = np.sort(rng.integers(start, start + 214 * 86_400, len(users)))
    return Ratings(
        users[shuffle].astype(np.int32),
        items[shuffle].astype(np.int32),
        stars[shuffle],
        IdMap(np.arange(1, n_users + 1, dtype=np.int64), "int", "user"),
        IdMap(np.arange(1, n_items + 1, dtype=np.int64), "int", "item"),
        RatingScale(1.0, 5.0, 1.0),
        timestamps=timestamps,
        item_table=ItemTable(_generated_titles(n_items, rng), genres, names),
        name="generated MovieLens-like ratings",
        meta={"edition": "generated", "path": None,
              "generated": {"kind": "movielens-like", "n_users": n_users, "n_items": n_items,
                            "n_ratings": n_ratings, "rank": rank, "noise": noise, "seed": seed}},
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
