"""Scale benchmark: an ML-20M-sized data set (generated here), loaded, split and trained with MF for 5 epochs.

    python bench/scale.py                      # generate bench/data/scale/ once, then measure 1M, 5M, 20M
    python bench/scale.py --sizes 1m,5m        # a quicker look
    python bench/scale.py --surprise 5m        # also scikit-surprise SVD on the 5M sample, for contrast

The generated ratings mimic ML-20M's shape: 138,493 users with at least 20 ratings each and a heavy-tailed
(lognormal) activity (median 73, max ~9K), 26,744 items with a capped lognormal popularity (median 49 ratings,
top item 0.22 % of all ratings; ML-20M: 18 and 0.34 %), half-star ratings 0.5..5 (mean 3.54) from a rank-8
model with user/item biases and noise, unique (user, item) pairs, and files in ML-20M's ``ratings.csv`` layout
(userId, movieId, rating, timestamp, sorted by user). The 1M and 5M files are uniform samples of the 20M one.

Each size is measured in its own child process, so peak RSS is that size's alone: load the CSV with
``deepmf.data.load``, split 90/10 at random, train MF (k=64) for 5 epochs with the numba engine through the
Trainer, then score the test part.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from _common import (
    DATA_DIR,
    fmt_rate,
    load_average,
    machine_line,
    markdown_table,
    peak_rss_mib,
    reset_peak_rss,
    rss_mib,
    run_child,
)

N_USERS = 138_493
N_ITEMS = 26_744
N_RATINGS = 20_000_000
MIN_PER_USER = 20
TOP_SHARE = 0.0034  # ML-20M's most rated movie holds 0.34 % of its ratings
SIZES = {"1m": 1_000_000, "5m": 5_000_000, "20m": N_RATINGS}
SCALE_DIR = DATA_DIR / "scale"


def _user_counts(rng: np.random.Generator) -> np.ndarray:
    """Ratings per user: 20 + a lognormal tail scaled so the total is N_RATINGS (ML-20M's max is ~9.3K)."""
    tail = rng.lognormal(mean=0.0, sigma=1.3, size=N_USERS)
    tail *= (N_RATINGS - MIN_PER_USER * N_USERS) / tail.sum()
    counts = MIN_PER_USER + np.minimum(np.floor(tail), N_ITEMS // 3).astype(np.int64)
    # Hand the rounding remainder to random users so the total is exact.
    short = N_RATINGS - int(counts.sum())
    np.add.at(counts, rng.choice(N_USERS, size=short, replace=True), 1)
    return counts


def _item_popularity(rng: np.random.Generator) -> np.ndarray:
    """Item weights: lognormal (median item ~20 ratings, as in ML-20M) with the head capped at TOP_SHARE."""
    weights = rng.lognormal(mean=0.0, sigma=2.7, size=N_ITEMS)
    cap = weights.max()
    for _ in range(100):  # fixed point of cap = TOP_SHARE * sum(min(w, cap))
        cap = TOP_SHARE * np.minimum(weights, cap).sum()
    return np.minimum(weights, cap)


def _unique_items(users: np.ndarray, item_cdf: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An item for every row, drawn by popularity, redrawn where a (user, item) pair repeats."""
    items = np.searchsorted(item_cdf, rng.random(len(users))).astype(np.int32)
    rows = np.arange(len(users))  # rows whose user may still hold a repeated pair
    for round_ in range(60):
        key = users[rows].astype(np.int64) * N_ITEMS + items[rows]
        order = np.argsort(key, kind="stable")
        repeat = np.zeros(len(rows), dtype=bool)
        repeat[order[1:]] = key[order[1:]] == key[order[:-1]]
        n_repeat = int(repeat.sum())
        if n_repeat == 0:
            return items
        # Redraw by popularity first; the last rounds draw uniformly, because the heaviest users keep
        # colliding with the popular items they already have.
        if round_ < 40:
            items[rows[repeat]] = np.searchsorted(item_cdf, rng.random(n_repeat)).astype(np.int32)
        else:
            items[rows[repeat]] = rng.integers(0, N_ITEMS, n_repeat, dtype=np.int32)
        rows = rows[np.isin(users[rows], np.unique(users[rows[repeat]]))]
    raise RuntimeError("could not make (user, item) pairs unique")


def generate_arrays(seed: int = 0) -> tuple[dict[str, np.ndarray], np.random.Generator]:
    """The 20M ratings in memory, and the generator that drew them (``generate`` draws its samples on).

    Returns:
        ({"users", "items" (0-based indices), "ratings", "timestamps", "movie_ids" (raw item ids)}, rng).
        ``generate`` writes these as CSV files; bench/gpu.py uses them directly (writing and parsing 485 MiB of
        CSV would cost more than the GPU runs it feeds).
    """
    rng = np.random.default_rng(seed)
    counts = _user_counts(rng)
    users = np.repeat(np.arange(N_USERS, dtype=np.int32), counts)
    popularity = _item_popularity(rng)
    item_cdf = np.cumsum(popularity / popularity.sum())
    item_cdf[-1] = 1.0
    items = _unique_items(users, item_cdf, rng)

    # Ratings from a rank-8 model: popular items rate a little higher, as in MovieLens.
    rank = 8
    user_vec = rng.normal(0, 0.35, (N_USERS, rank)).astype(np.float32)
    item_vec = rng.normal(0, 0.35, (N_ITEMS, rank)).astype(np.float32)
    user_bias = rng.normal(0, 0.4, N_USERS).astype(np.float32)
    item_bias = rng.normal(0, 0.4, N_ITEMS) + 0.05 * np.log(popularity / np.median(popularity))
    item_bias = item_bias.astype(np.float32)
    ratings = np.empty(len(users), dtype=np.float32)
    chunk = 2_000_000
    for start in range(0, len(users), chunk):
        u, i = users[start:start + chunk], items[start:start + chunk]
        raw = 3.3 + user_bias[u] + item_bias[i] + np.einsum("nk,nk->n", user_vec[u], item_vec[i])
        raw += rng.normal(0, 0.8, len(u)).astype(np.float32)
        ratings[start:start + chunk] = np.clip(np.round(raw * 2) / 2, 0.5, 5.0)
    timestamps = rng.integers(789_652_009, 1_427_784_002, len(users))  # ML-20M's date range

    # Sparse raw ids, as in MovieLens (movieId runs to 131,262 in ML-20M).
    movie_ids = np.sort(rng.choice(131_262, size=N_ITEMS, replace=False) + 1)
    return {"users": users, "items": items, "ratings": ratings, "timestamps": timestamps,
            "movie_ids": movie_ids}, rng


def generate(out_dir: Path, seed: int = 0) -> None:
    """Write ratings-1m.csv, ratings-5m.csv and ratings-20m.csv (ML-20M layout) into ``out_dir``."""
    arrays, rng = generate_arrays(seed)
    users, items, ratings, timestamps = arrays["users"], arrays["items"], arrays["ratings"], arrays["timestamps"]
    movie_ids = arrays["movie_ids"]
    out_dir.mkdir(parents=True, exist_ok=True)
    keep_all = np.arange(len(users))
    for name, size in SIZES.items():
        rows = keep_all if size == len(users) else np.sort(rng.choice(len(users), size=size, replace=False))
        table = pa.table({"userId": users[rows] + 1, "movieId": movie_ids[items[rows]],
                          "rating": ratings[rows], "timestamp": timestamps[rows]})
        tmp = out_dir / f".ratings-{name}.csv.tmp"
        with open(tmp, "wb") as handle:  # ML-20M's header is unquoted; pyarrow would quote it
            handle.write(b"userId,movieId,rating,timestamp\n")
            pacsv.write_csv(table, handle, write_options=pacsv.WriteOptions(include_header=False,
                                                                           quoting_style="none"))
        tmp.replace(out_dir / f"ratings-{name}.csv")
        print(f"wrote {out_dir / f'ratings-{name}.csv'} ({size:,} ratings)", file=sys.stderr)


def _path(size: str) -> Path:
    return SCALE_DIR / f"ratings-{size}.csv"


def measure_deepmf(size: str, factors: int, epochs: int, threads: int | None) -> dict[str, object]:
    """Load, split 90/10, train MF with the numba engine through the Trainer, score the test part."""
    import torch

    from deepmf.data import load
    from deepmf.data.splits import random_split
    from deepmf.models.registry import create_model
    from deepmf.training.config import TrainConfig
    from deepmf.training.trainer import Trainer
    from deepmf.training.validation import evaluate_rmse

    config = TrainConfig(optimizer="sgd", engine="numba", lr=0.015, l2=0.08, epochs=epochs, threads=threads)
    warm = random_split(load(_path("1m")), 0.5).train.subset(np.arange(1000))
    Trainer(config, progress=False).fit(create_model("mf", warm, factors=factors), warm)  # numba cache load

    started = time.perf_counter()
    data = load(_path(size))
    loaded = time.perf_counter()
    after_load, load_peak = rss_mib()
    reset_peak_rss()  # from here on the peak is split + training + scoring
    split = random_split(data, 0.1, seed=0)
    del data
    split_done = time.perf_counter()
    torch.manual_seed(0)
    model = create_model("mf", split.train, factors=factors)
    result = Trainer(config, progress=False).fit(model, split.train)
    trained = time.perf_counter()
    scale = split.train.scale
    test_rmse = evaluate_rmse(model, split.test.to(), scale.minimum, scale.maximum)
    epoch_train_seconds = [len(split.train) / r.ratings_per_second for r in result.history]
    return {"size": size, "engine": result.engine, "train_ratings": len(split.train),
            "load_s": loaded - started, "split_s": split_done - loaded, "fit_s": trained - split_done,
            "epoch_s": epoch_train_seconds, "ratings_per_s": result.ratings_per_second,
            "total_s": trained - started, "test_rmse": test_rmse, "load_peak_mib": load_peak,
            "after_load_mib": after_load, "train_peak_mib": rss_mib()[1], "peak_rss_mib": peak_rss_mib()}


def measure_surprise(size: str, factors: int, epochs: int) -> dict[str, object]:
    """scikit-surprise SVD on the same file and split sizes (same k, epochs, lr, reg), for contrast."""
    import pandas as pd
    from surprise import SVD, Dataset, Reader

    started = time.perf_counter()
    frame = pd.read_csv(_path(size), usecols=["userId", "movieId", "rating"])
    test_rows = np.random.default_rng(0).random(len(frame)) < 0.1
    train_frame = frame[~test_rows]
    trainset = Dataset.load_from_df(train_frame, Reader(rating_scale=(0.5, 5.0))).build_full_trainset()
    del frame, train_frame
    loaded = time.perf_counter()
    algo = SVD(n_factors=factors, n_epochs=epochs, lr_all=0.015, reg_all=0.08, random_state=0)
    algo.fit(trainset)
    fitted = time.perf_counter()
    per_epoch = (fitted - loaded) / epochs
    return {"size": size, "train_ratings": trainset.n_ratings, "load_s": loaded - started,
            "fit_s": fitted - loaded, "epoch_s": [per_epoch] * epochs,
            "ratings_per_s": trainset.n_ratings / per_epoch, "peak_rss_mib": peak_rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1m,5m,20m", help="comma-separated subset of 1m,5m,20m")
    parser.add_argument("--surprise", default="", help="also run scikit-surprise SVD on these sizes")
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="numba threads (default: all cores)")
    parser.add_argument("--surprise-max-gib", type=float, default=10.0,
                        help="address-space cap for the Surprise child (it fails, not the machine)")
    parser.add_argument("--regenerate", action="store_true", help="write the data files again")
    parser.add_argument("--child", choices=("deepmf", "surprise"), help=argparse.SUPPRESS)
    parser.add_argument("--size", choices=tuple(SIZES), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child == "deepmf":
        print(json.dumps(measure_deepmf(args.size, args.factors, args.epochs, args.threads)))
        return
    if args.child == "surprise":
        # A hard cap on address space: on a shared machine an oversized sample fails alone (MemoryError)
        # instead of pushing everyone's processes into swap or the OOM killer.
        cap = int(args.surprise_max_gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        print(json.dumps(measure_surprise(args.size, args.factors, args.epochs)))
        return

    if args.regenerate or not all(_path(size).exists() for size in SIZES):
        generate(SCALE_DIR)
    common = ["--factors", str(args.factors), "--epochs", str(args.epochs)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    print(machine_line())
    rows = []
    for size in [s.strip() for s in args.sizes.split(",") if s.strip()]:
        m = run_child(["bench/scale.py", "--child", "deepmf", "--size", size, *common])
        rows.append([f"deepmf MF, {m['engine']} engine", size, f"{m['train_ratings']:,}",
                     f"{m['load_s']:.1f}",
                     f"{m['split_s']:.1f}", f"{np.mean(m['epoch_s']):.2f}", fmt_rate(m["ratings_per_s"]),
                     f"{m['total_s']:.1f}", f"{m['test_rmse']:.4f}",
                     f"{m['load_peak_mib']:.0f} / {m['after_load_mib']:.0f} / {m['train_peak_mib']:.0f}"])
        print(f"  {rows[-1]}", file=sys.stderr)
    for size in [s.strip() for s in args.surprise.split(",") if s.strip()]:
        try:
            m = run_child(["bench/scale.py", "--child", "surprise", "--size", size,
                           "--surprise-max-gib", str(args.surprise_max_gib), *common])
        except RuntimeError as exc:
            print(exc, file=sys.stderr)
            failure = "MemoryError" if "MemoryError" in str(exc) else "error (see stderr)"
            rows.append(["scikit-surprise SVD", size, "", "", "", "", "", "", "",
                         f"{failure} under a {args.surprise_max_gib:g} GiB cap"])
            continue
        rows.append(["scikit-surprise SVD", size, f"{m['train_ratings']:,}", f"{m['load_s']:.1f}", "in load",
                     f"{np.mean(m['epoch_s']):.2f}", fmt_rate(m["ratings_per_s"]),
                     f"{m['load_s'] + m['fit_s']:.1f}", "", f"peak {m['peak_rss_mib']:.0f}"])
        print(f"  {rows[-1]}", file=sys.stderr)
    print(markdown_table(["system", "sample", "train ratings", "load s", "split s", "s/epoch",
                          "ratings/s per epoch", f"load+split+{args.epochs} epochs s", "test RMSE",
                          "RSS MiB: load peak / after load / split+train peak"], rows))
    print(f"load average after the run: {load_average():.2f}")


if __name__ == "__main__":
    main()
