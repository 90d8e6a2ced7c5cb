"""Accuracy of every deepmf model next to scikit-surprise and myFM, on the same splits, with wall times.

    DEEPMF_DATA=../shared/data python bench/accuracy.py --protocol u1
    DEEPMF_DATA=../shared/data python bench/accuracy.py --protocol 5fold
    DEEPMF_DATA=../shared/data python bench/accuracy.py --protocol latest

Protocols: ``u1`` is ML-100K's canonical u1.base/u1.test; ``5fold`` the canonical u1..u5 folds (mean ± std);
``latest`` ml-latest-small, random 90/10 splits with seeds 0, 1, 2. deepmf models run through
``run_experiment`` exactly as ``deepmf compare`` does, with their registry defaults (tuned on validation
carved from u1.base, never on a test file) and its default validation carve: 5 % of the training part for
models with early stopping, none for Bayesian MF (nothing to stop) and the blend (which carves its own 10 %).
``Recommender.evaluate`` scores each test rating at its own day when the model uses time (Bayesian MF's date
feature, and so the blend), the information myFM's date feature uses; ``bayes@no-time`` is the same trained
Bayesian MF scored without times (each user's training days averaged in), as ``Recommender.predict`` does.
The test part of a split is read once, to score. Peers get the identical training and test ratings:
Surprise ``SVD()`` and ``SVDpp()`` with their defaults, and myFM's Gibbs-sampled Bayesian FM (rank 10,
300 sweeps, all kept) as plain MF and with "SVD++ flipped + date" features (implicit user and item features
from the training ratings, day of rating as a categorical feature). Test ratings of users or items with no
training rating are predicted by each system's own fallback (deepmf: bias terms, ``cold_start="bias"``).
Wall time is one fit plus scoring, in seconds, on this machine at the load printed above the tables.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from _common import data_root, machine_line, markdown_table
from deepmf.data import load
from deepmf.data.ratings import Ratings
from deepmf.data.splits import Split, parse_split
from deepmf.experiment import run_experiment, train_config_for

MODELS = ("mf", "deepmf", "svdpp", "bayes", "bayes@no-time", "autorec", "blend")
PEERS = ("surprise-svd", "surprise-svdpp", "myfm-mf", "myfm-flipped-date")
SECONDS_PER_DAY = 86_400
# The Bayesian MF trained per (split, seed), so "bayes@no-time" rescores it instead of training it again.
_BAYES: dict[tuple[str, int], Any] = {}


def protocol_splits(name: str) -> tuple[Ratings, list[Split]]:
    """The data set and splits of a protocol."""
    root = data_root()
    if name == "u1":
        data = load(root / "ml-100k")
        return data, parse_split("u1", data)
    if name == "5fold":
        data = load(root / "ml-100k")
        return data, parse_split("canonical", data)
    if name == "latest":
        data = load(root / "ml-latest-small")
        return data, [parse_split("random:0.1", data, seed=seed)[0] for seed in (0, 1, 2)]
    raise SystemExit(f"unknown protocol {name!r}: u1, 5fold or latest")


def rmse(predicted: np.ndarray, truth: np.ndarray, low: float, high: float) -> float:
    return float(np.sqrt(np.mean((np.clip(predicted, low, high) - truth) ** 2)))


# ---- deepmf ------------------------------------------------------------------------------------------------
def run_deepmf(model: str, data: Ratings, split: Split, seed: int) -> float:
    config = train_config_for(model, {"seed": seed})
    result = run_experiment(data, split, model, {}, config, progress=False)
    if model == "bayes":
        _BAYES[split.name, seed] = result.recommender
    return float(result.metrics["rmse"])


def run_bayes_no_time(data: Ratings, split: Split, seed: int) -> float:
    """Bayesian MF scored without the test ratings' times (trained here unless "bayes" ran on this split)."""
    if (split.name, seed) not in _BAYES:
        run_deepmf("bayes", data, split, seed)
    return float(_BAYES[split.name, seed].evaluate(split.test, use_time=False).metrics["rmse"])


# ---- peers -------------------------------------------------------------------------------------------------
def run_surprise(kind: str, split: Split, seed: int) -> float:
    from surprise import SVD, Dataset, Reader, SVDpp

    scale = split.train.scale
    frame = pd.DataFrame({"u": split.train.users, "i": split.train.items, "r": split.train.ratings})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=(scale.minimum, scale.maximum))
                                    ).build_full_trainset()
    algo = SVD(random_state=seed) if kind == "surprise-svd" else SVDpp(random_state=seed)
    algo.fit(trainset)
    test = split.test
    pairs = zip(test.users, test.items, strict=True)
    predicted = np.array([algo.predict(int(u), int(i)).est for u, i in pairs])
    return rmse(predicted, test.ratings, scale.minimum, scale.maximum)


def _normalized_rows(keys: np.ndarray, values: np.ndarray, n_rows: int, n_cols: int) -> sp.csr_matrix:
    """Row r lists the distinct ``values`` paired with key r, each weighted |row|^-1/2 (as in SVD++)."""
    pairs = np.unique(np.stack([keys, values], axis=1), axis=0)
    counts = np.bincount(pairs[:, 0], minlength=n_rows)
    weights = 1.0 / np.sqrt(np.maximum(counts[pairs[:, 0]], 1))
    return sp.csr_matrix((weights, (pairs[:, 0], pairs[:, 1])), shape=(n_rows, n_cols))


def run_myfm(kind: str, split: Split, seed: int, sweeps: int = 300, rank: int = 10) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # myFM imports the deprecated pkg_resources
        import myfm

    train, test = split.train, split.test
    n_users, n_items = train.n_users, train.n_items
    flipped = kind == "myfm-flipped-date"
    user_block = sp.identity(n_users, format="csr")
    item_block = sp.identity(n_items, format="csr")
    groups = []
    x_train = x_test = None
    if flipped:
        # Implicit features from the training ratings only (Rendle et al. 2019's stricter protocol).
        user_block = sp.hstack([user_block, _normalized_rows(train.users, train.items, n_users, n_items)],
                               format="csr")
        item_block = sp.hstack([item_block, _normalized_rows(train.items, train.users, n_items, n_users)],
                               format="csr")
        days = np.unique(train.timestamps // SECONDS_PER_DAY)
        x_train, x_test = (_day_one_hot(part.timestamps // SECONDS_PER_DAY, days) for part in (train, test))
        groups += [0] * len(days)
        groups += [1] * n_users + [2] * n_items + [3] * n_items + [4] * n_users
    else:
        groups += [0] * n_users + [1] * n_items
    blocks = {part_name: [myfm.RelationBlock(part.users.astype(np.int64), user_block),
                          myfm.RelationBlock(part.items.astype(np.int64), item_block)]
              for part_name, part in (("train", train), ("test", test))}
    fm = myfm.MyFMRegressor(rank=rank, random_seed=seed)
    fm.fit(x_train, train.ratings.astype(np.float64), X_rel=blocks["train"], n_iter=sweeps,
           n_kept_samples=sweeps, grouping=groups)
    predicted = fm.predict(x_test, blocks["test"])
    return rmse(predicted, test.ratings, train.scale.minimum, train.scale.maximum)


def _day_one_hot(day_numbers: np.ndarray, days: np.ndarray) -> sp.csr_matrix:
    """One-hot day of each rating over the training days; a day never seen in training is all zeros."""
    index = np.searchsorted(days, day_numbers)
    known = (index < len(days)) & (days[np.minimum(index, len(days) - 1)] == day_numbers)
    rows = np.flatnonzero(known)
    return sp.csr_matrix((np.ones(len(rows)), (rows, index[known])), shape=(len(day_numbers), len(days)))


RUNNERS: dict[str, Callable[[Ratings, Split, int], float]] = {
    "bayes@no-time": run_bayes_no_time,
    "surprise-svd": lambda data, split, seed: run_surprise("surprise-svd", split, seed),
    "surprise-svdpp": lambda data, split, seed: run_surprise("surprise-svdpp", split, seed),
    "myfm-mf": lambda data, split, seed: run_myfm("myfm-mf", split, seed),
    "myfm-flipped-date": lambda data, split, seed: run_myfm("myfm-flipped-date", split, seed),
}


def measure(system: str, data: Ratings, splits: list[Split]) -> dict[str, Any]:
    """RMSE and wall seconds of ``system`` on every split."""
    runner = RUNNERS.get(system) or (lambda d, s, seed: run_deepmf(system, d, s, seed))
    scores, seconds = [], []
    for seed, split in enumerate(splits):
        start = time.perf_counter()
        scores.append(runner(data, split, seed))
        seconds.append(time.perf_counter() - start)
    return {"system": system, "rmse": scores, "seconds": seconds}


def row(record: dict[str, Any]) -> list[str]:
    scores, seconds = record["rmse"], record["seconds"]
    if len(scores) == 1:
        return [record["system"], f"{scores[0]:.4f}", f"{seconds[0]:.1f}"]
    spread = statistics.stdev(scores)
    return [record["system"], f"{statistics.mean(scores):.4f} ± {spread:.4f}",
            f"{statistics.mean(seconds):.1f}", " / ".join(f"{s:.4f}" for s in scores)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--protocol", default="u1", choices=("u1", "5fold", "latest"))
    parser.add_argument("--systems", default=",".join(MODELS + PEERS),
                        help="comma-separated deepmf models (blend:a,b allowed) and peers")
    parser.add_argument("--json", help="also write the raw records here")
    args = parser.parse_args()
    data, splits = protocol_splits(args.protocol)
    print(machine_line())
    records = []
    for system in args.systems.split(";") if ";" in args.systems else args.systems.split(","):
        records.append(measure(system.strip(), data, splits))
        print(json.dumps(records[-1]), flush=True)
    headers = ["system", "RMSE", "wall s"] + (["per split"] if len(splits) > 1 else [])
    print(markdown_table(headers, [row(r) for r in records]))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"protocol": args.protocol, "records": records}, handle, indent=1)


if __name__ == "__main__":
    main()
