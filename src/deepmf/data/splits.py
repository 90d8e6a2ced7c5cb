"""Train/test splits. Each is a pure function of (data, seed); train and test share the full data's id maps.

Every ``Split`` reports its cold start honestly: test users and items that never occur in its training part,
and how many test ratings involve one. ``drop_cold`` removes those ratings when the caller wants to.

Spec strings for ``parse_split`` (the CLI's ``--split``):

* ``u1`` .. ``u5``, ``ua``, ``ub``: the canonical ML-100K files; ``canonical``: u1..u5 (5 splits)
* ``random:0.2``: random 20 % of ratings held out
* ``user:0.2``: 20 % of each user's ratings held out (at least one kept for training)
* ``user:leave3``: 3 random ratings of each user held out (at least one kept for training)
* ``time:0.2``: the latest 20 % of ratings (global time cut) held out
* ``usertime:last2``: each user's 2 latest ratings held out (at least one kept for training)
* ``leave-last-out``: each user's latest rating (or interaction) held out: ``usertime:last1`` under its usual name
* ``ncf``: the split of NCF's protocol (He et al. 2017), the same rows as ``leave-last-out``; NCF then ranked each
  held-out item among 99 sampled items, which deepmf does only when asked (``--protocol sampled``)
* ``kfold:5``: 5 folds, each the test part once
* ``files:TRAIN,TEST``: a predefined split given as two files (see ``file_split``)

When no split is named, the commands use ``default_split``: the data's canonical split where it has one (u1 for
ML-100K), else ``random:0.2``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from deepmf.data.columns import RawRatings
from deepmf.data.files import ratings_from_raw, read_user_file
from deepmf.data.idmap import IdMap
from deepmf.data.implicit import Feedback, implicit_from_raw, to_implicit
from deepmf.data.movielens import read_rating_file
from deepmf.data.ratings import Ratings, RatingScale
from deepmf.data.scale import ScaleBounds, declared_scale
from deepmf.errors import ConfigError, DataError

CANONICAL_SPLITS = ("u1", "u2", "u3", "u4", "u5", "ua", "ub")
# The split of ratings that have no canonical one, and of implicit feedback (per user: each keeps a history).
RANDOM_SPLIT = "random:0.2"
USER_SPLIT = "user:0.2"


def default_split(r: Ratings) -> str:
    """The split every command uses when none is named: "user:0.2" for implicit feedback (every test user keeps
    a history to rank from), else "u1" for ML-100K (its canonical split, the one papers and peers report), else
    "random:0.2"."""
    if r.feedback == "implicit":
        return USER_SPLIT
    return "u1" if r.meta.get("edition") == "ml-100k" else RANDOM_SPLIT


@dataclass(frozen=True)
class Split:
    """A train/test pair with its cold-start counts.

    Attributes:
        train: training ratings (same id maps as ``test``).
        test: test ratings.
        name: "u1", "random:0.2", "kfold:5#3", ...
        cold_users: distinct test users with no training rating.
        cold_items: distinct test items with no training rating.
        cold_test_ratings: test ratings whose user or item has no training rating.
    """

    train: Ratings
    test: Ratings
    name: str
    cold_users: int
    cold_items: int
    cold_test_ratings: int

    def __repr__(self) -> str:
        """One line: name, sizes and cold-start counts (not the arrays)."""
        return (f"Split({self.name!r}: {len(self.train):,} train, {len(self.test):,} test; cold: "
                f"{self.cold_users:,} users, {self.cold_items:,} items, {self.cold_test_ratings:,} test ratings)")

    def summary(self) -> dict[str, Any]:
        """Sizes and cold-start counts, JSON-ready."""
        return {
            "name": self.name,
            "n_train": len(self.train),
            "n_test": len(self.test),
            "cold_users": self.cold_users,
            "cold_items": self.cold_items,
            "cold_test_ratings": self.cold_test_ratings,
        }


def _cold_mask(train: Ratings, test: Ratings) -> tuple[np.ndarray, np.ndarray]:
    """Per test row: (user unseen in train, item unseen in train)."""
    seen_users = np.bincount(train.users, minlength=train.n_users) > 0
    seen_items = np.bincount(train.items, minlength=train.n_items) > 0
    return ~seen_users[test.users], ~seen_items[test.items]


def make_split(train: Ratings, test: Ratings, name: str) -> Split:
    """A Split with its cold-start counts computed."""
    cold_user_rows, cold_item_rows = _cold_mask(train, test)
    return Split(
        train,
        test,
        name,
        cold_users=len(np.unique(test.users[cold_user_rows])),
        cold_items=len(np.unique(test.items[cold_item_rows])),
        cold_test_ratings=int(np.count_nonzero(cold_user_rows | cold_item_rows)),
    )


def _from_test_mask(r: Ratings, test: np.ndarray, name: str) -> Split:
    return make_split(r.subset(~test), r.subset(test), name)


def _check_fraction(fraction: float, what: str = "test fraction") -> float:
    if not isinstance(fraction, (int, float)) or not 0.0 < float(fraction) < 1.0:
        raise ConfigError(f"{what} must be between 0 and 1 (exclusive), got {fraction!r}")
    return float(fraction)


def _require_ratings(r: Ratings, minimum: int = 2) -> None:
    if len(r) < minimum:
        raise DataError(f"{r.name or 'ratings'}: {len(r)} rating(s) are too few to split")


def _shuffled_rows(n: int, seed: int) -> np.ndarray:
    """``np.random.default_rng(seed).permutation(n)`` (the same order: it shuffles an arange in place), but
    int32 where ``n`` allows: half the memory of the int64 one at 20M ratings."""
    rows = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
    np.random.default_rng(seed).shuffle(rows)
    return rows


def random_split(r: Ratings, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Hold out a random ``test_fraction`` of the ratings (at least one, never all)."""
    fraction = _check_fraction(test_fraction)
    _require_ratings(r)
    n_test = min(max(round(fraction * len(r)), 1), len(r) - 1)
    test = np.zeros(len(r), dtype=bool)
    test[_shuffled_rows(len(r), seed)[:n_test]] = True  # the order is freed before the subsets are copied
    return _from_test_mask(r, test, f"random:{fraction:g}")


def _rank_within_user(r: Ratings, sort_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rank of each rating among its user's ratings by ``sort_key`` descending, its user's rating count)."""
    order = np.lexsort((-sort_key, r.users))  # by user, then sort_key descending
    counts = r.user_counts()
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.empty(len(r), dtype=np.int64)
    rank[order] = np.arange(len(r)) - starts[r.users[order]]
    return rank, counts[r.users]


def _per_user_holdout(
    r: Ratings, sort_key: np.ndarray, fraction: float | None, k: int | None, name: str
) -> Split:
    """Hold out the top-``k`` (or top ``fraction``) of each user's ratings by ``sort_key``, keeping one."""
    rank, count = _rank_within_user(r, sort_key)
    n_out = (
        np.full(len(r), k, dtype=np.int64) if k is not None else np.rint(fraction * count).astype(np.int64)
    )
    n_out = np.minimum(n_out, count - 1)  # every user keeps at least one training rating: no cold users
    return _from_test_mask(r, rank < n_out, name)


def user_split(
    r: Ratings, test_fraction: float | None = None, leave_k: int | None = None, seed: int = 0
) -> Split:
    """Per-user holdout: ``test_fraction`` of each user's ratings, or ``leave_k`` of them, chosen at random.

    Each user keeps at least one training rating, so no test user is cold.
    """
    if (test_fraction is None) == (leave_k is None):
        raise ConfigError("user_split needs exactly one of test_fraction and leave_k")
    _require_ratings(r)
    key = np.random.default_rng(seed).random(len(r))
    if leave_k is not None:
        if not isinstance(leave_k, (int, np.integer)) or leave_k < 1:
            raise ConfigError(f"leave_k must be a positive integer, got {leave_k!r}")
        return _per_user_holdout(r, key, None, int(leave_k), f"user:leave{leave_k}")
    fraction = _check_fraction(test_fraction)  # type: ignore[arg-type]
    return _per_user_holdout(r, key, fraction, None, f"user:{fraction:g}")


def _timestamps(r: Ratings) -> np.ndarray:
    if r.timestamps is None:
        raise DataError(f"{r.name or 'ratings'}: a temporal split needs timestamps (pass --time-col)")
    return r.timestamps


def temporal_split(r: Ratings, test_fraction: float = 0.2) -> Split:
    """Global time cut: the latest ``test_fraction`` of ratings are the test part (ties: file order)."""
    fraction = _check_fraction(test_fraction)
    _require_ratings(r)
    order = np.argsort(_timestamps(r), kind="stable")
    n_test = min(max(round(fraction * len(r)), 1), len(r) - 1)
    test = np.zeros(len(r), dtype=bool)
    test[order[len(r) - n_test :]] = True
    return _from_test_mask(r, test, f"time:{fraction:g}")


def user_temporal_split(r: Ratings, last_k: int = 1) -> Split:
    """Each user's ``last_k`` latest ratings are the test part (each user keeps at least one for training)."""
    if not isinstance(last_k, (int, np.integer)) or last_k < 1:
        raise ConfigError(f"last_k must be a positive integer, got {last_k!r}")
    _require_ratings(r)
    ts = _timestamps(r)
    # Ties in time: the later row in the file counts as later (rank by (timestamp, row)).
    key = np.argsort(np.argsort(ts, kind="stable"), kind="stable").astype(np.float64)
    return _per_user_holdout(r, key, None, int(last_k), f"usertime:last{last_k}")


def kfold_splits(r: Ratings, k: int = 5, seed: int = 0) -> list[Split]:
    """``k`` random folds of (nearly) equal size; split i tests on fold i and trains on the rest."""
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise ConfigError(f"k-fold needs k >= 2, got {k!r}")
    _require_ratings(r, k)
    fold_of = np.empty(len(r), dtype=np.int32)
    fold_of[_shuffled_rows(len(r), seed)] = np.arange(len(r), dtype=np.int32) % k
    return [_from_test_mask(r, fold_of == i, f"kfold:{k}#{i + 1}") for i in range(k)]


def _coded(r: Ratings, raw: RawRatings) -> Ratings:
    """Rows of a canonical split file coded with ``r``'s maps, carrying r's scale and side tables (implicit
    ``r``: the file's ratings made interactions with r's threshold)."""
    implicit = r.feedback == "implicit"
    scale = RatingScale.from_dict(r.meta["source_scale"]) if implicit else r.scale
    coded = ratings_from_raw(raw, scale=scale, user_ids=r.user_ids, item_ids=r.item_ids, name=r.name)
    part = replace(r, users=coded.users, items=coded.items, ratings=coded.ratings, timestamps=coded.timestamps,
                   scale=scale, feedback="explicit")
    return to_implicit(part, r.meta.get("positive")) if implicit else part


def canonical_split(r: Ratings, name: str) -> Split:
    """The canonical ML-100K split ``name`` (u1..u5, ua, ub), read from ``<name>.base``/``<name>.test`` beside
    ``r``'s ``u.data`` (``r.meta["path"]``) and coded with ``r``'s id maps."""
    if name not in CANONICAL_SPLITS:
        raise ConfigError(f"unknown canonical split {name!r}; choose one of {', '.join(CANONICAL_SPLITS)}")
    folder = Path(str(r.meta.get("path") or ""))
    base, test = folder / f"{name}.base", folder / f"{name}.test"
    if not r.meta.get("path") or not base.is_file() or not test.is_file():
        raise DataError(
            f"split {name} needs {name}.base and {name}.test of ML-100K"
            f"{f' in {folder}' if r.meta.get('path') else ''}; load ml-100k to use it"
        )
    return make_split(
        _coded(r, read_rating_file(base, "100k")), _coded(r, read_rating_file(test, "100k")), name
    )


def file_split(train_path: str | Path, test_path: str | Path, **load_kwargs: Any) -> Split:
    """A predefined split given as two files (like Surprise's ``load_from_folds``).

    Id maps are built on the union of both files, so every test id has an embedding row. The scale is the
    declared one, else the one the training file spans: a test rating outside it is an error naming its line
    (a model never scores ratings on another scale than it was trained on).

    Args:
        train_path, test_path: the two rating files (same layout).
        **load_kwargs: ``user_col``, ``item_col``, ``rating_col``, ``time_col``, ``sep``, ``encoding``,
            ``duplicates``, ``scale``, ``feedback``, ``positive`` as for ``deepmf.data.load`` (implicit
            feedback: the files may be event logs without ratings, and the test file's interactions are its
            ratings at or above the same ``positive``).
    """
    allowed = {"user_col", "item_col", "rating_col", "time_col", "sep", "encoding", "duplicates", "scale",
               "feedback", "positive"}
    unknown = set(load_kwargs) - allowed
    if unknown:
        raise ConfigError(f"file_split: unknown option(s) {', '.join(sorted(unknown))}")
    duplicates = load_kwargs.pop("duplicates", "error")
    bounds = declared_scale(load_kwargs.pop("scale", None))
    feedback = Feedback.of(load_kwargs.pop("feedback", "explicit"), load_kwargs.pop("positive", None), duplicates)
    raw_train = read_user_file(train_path, **load_kwargs, rating_optional=feedback.implicit)
    raw_test = read_user_file(test_path, **load_kwargs, rating_optional=feedback.implicit)
    if (raw_train.timestamps is None) != (raw_test.timestamps is None):
        raise DataError(
            f"{test_path}: has {'no ' if raw_test.timestamps is None else ''}timestamps but "
            f"{train_path} does{'' if raw_train.timestamps is None else ' not'}"
        )
    # Maps on the union of both files; each part is then coded with them (duplicates judged within a file).
    user_ids, _ = IdMap.build(np.concatenate([raw_train.users, raw_test.users]), name="user")
    item_ids, _ = IdMap.build(np.concatenate([raw_train.items, raw_test.items]), name="item")
    name = f"files:{Path(train_path).name},{Path(test_path).name}"
    common = {"user_ids": user_ids, "item_ids": item_ids}
    if feedback.implicit:
        train = implicit_from_raw(raw_train, feedback.positive, name, scale=bounds, **common)
        source = RatingScale.from_dict(train.meta["source_scale"])
        events = raw_train.ratings_missing or raw_test.ratings_missing
        held_to = None if events else ScaleBounds.of(source, "the training data's scale", step=False)
        test = implicit_from_raw(raw_test, feedback.positive, name, scale=held_to, **common)
    else:
        common.update(duplicates=duplicates, name=name)
        if bounds is not None:
            train = ratings_from_raw(raw_train, scale=bounds, **common)
        else:
            train = ratings_from_raw(raw_train, **common)
        held_to = ScaleBounds.of(train.scale, "the training data's scale", step=False)
        test = ratings_from_raw(raw_test, scale=held_to, **common)
    for part, path in ((train, train_path), (test, test_path)):
        part.meta.update({"edition": None, "path": str(path)})
    return make_split(train, test, name)


def validation_split(train: Ratings, fraction: float = 0.05, seed: int = 0) -> tuple[Ratings, Ratings]:
    """Carve a validation set for early stopping out of training data only: a random ``fraction`` of the rows,
    or for implicit feedback ``fraction`` of each user's interactions (every user keeps one for training, so
    each validation user has a history to rank from).

    Returns:
        (the remaining training ratings, the validation ratings), both with the full id maps.
    """
    if train.feedback == "implicit":
        split = user_split(train, test_fraction=fraction, seed=seed)
    else:
        split = random_split(train, fraction, seed)
    return split.train, split.test


def drop_cold(split: Split) -> Split:
    """The same split without test ratings whose user or item has no training rating."""
    cold_users, cold_items = _cold_mask(split.train, split.test)
    keep = ~(cold_users | cold_items)
    return make_split(split.train, split.test.subset(keep), split.name)


_FRACTION_KINDS = {"random", "user", "time"}


def parse_split(spec: str, r: Ratings, seed: int = 0) -> list[Split]:
    """Splits named by a spec string (see the module docstring for the grammar).

    Raises:
        ConfigError: a malformed spec.
        DataError: the data cannot be split that way (no timestamps, no canonical files).
    """
    if not isinstance(spec, str):
        raise ConfigError(f"a split is named by a string such as 'u1' or 'random:0.2', not {spec!r}")
    check_seed(seed)
    text = spec.strip()
    if text in CANONICAL_SPLITS:
        return [canonical_split(r, text)]
    if text == "canonical":
        return [canonical_split(r, name) for name in CANONICAL_SPLITS[:5]]
    kind, _, arg = text.partition(":")
    kind = kind.strip().lower()
    arg = arg.strip()
    if text in ("leave-last-out", "ncf"):
        split = user_temporal_split(r, 1)
        return [replace(split, name=text)]
    if kind == "files" and "," in arg:
        train_path, test_path = (p.strip() for p in arg.split(",", 1))
        if r.feedback == "implicit":  # the loaded data's threshold, compared on its source's scale
            events = r.meta.get("scale_source") == "events"
            scale = None if events else RatingScale.from_dict(r.meta["source_scale"])
            return [file_split(train_path, test_path, scale=scale, feedback="implicit",
                               positive=r.meta.get("positive"))]
        return [file_split(train_path, test_path, scale=r.scale)]
    if kind in _FRACTION_KINDS and _is_fraction(arg):
        fraction = float(arg)
        if kind == "random":
            return [random_split(r, fraction, seed)]
        if kind == "user":
            return [user_split(r, test_fraction=fraction, seed=seed)]
        return [temporal_split(r, fraction)]
    match = re.fullmatch(r"(?:leave|last)(\d+)", arg)
    if kind == "user" and match and arg.startswith("leave"):
        return [user_split(r, leave_k=int(match.group(1)), seed=seed)]
    if kind == "usertime" and match and arg.startswith("last"):
        return [user_temporal_split(r, int(match.group(1)))]
    if kind == "kfold" and arg.isdigit():
        return kfold_splits(r, int(arg), seed)
    raise ConfigError(
        f"unknown split {spec!r}; use u1..u5, ua, ub, canonical, random:0.2, user:0.2, user:leave3, "
        "time:0.2, usertime:last2, leave-last-out, ncf, kfold:5 or files:TRAIN,TEST"
    )


MAX_SEED = 2**32 - 1
"""The largest seed: what every generator a seed reaches takes (Optuna's sampler seeds NumPy's legacy
RandomState, which stops at 2**32 - 1; torch.manual_seed stops at 2**64 - 1)."""


def check_seed(seed: object) -> int:
    """``seed`` itself when it is an integer from 0 to ``MAX_SEED``; ConfigError otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"a seed is an integer from 0 to {MAX_SEED}, not {seed!r}")
    return int(seed)


def _is_fraction(text: str) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return 0.0 < value < 1.0
