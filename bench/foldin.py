"""Fold-in benchmark: new users without retraining, against retraining and the bias fallback (issue 14).

    python bench/foldin.py                         # mf, svdpp, bayes, autorec, deepmf, neumf on ML-100K u1.base
    python bench/foldin.py --models mf --seeds 0,1
    python bench/foldin.py --latency                # time only: one model per type, 100 fold-ins each

50 users of ML-100K u1.base are taken out of training entirely; each is folded in from a random half of his
u1.base ratings and the other half is predicted (``deepmf.evaluation.foldin.check_fold_in``). The table gives
the RMSE on those other halves for the fold-in, for a model retrained with the first halves included, and
for the ``cold_start="bias"`` fallback; u1.test is never read. Each model trains with its tuned defaults.

``--latency`` trains each model once on u1.base and times ``Recommender.fold_in`` for 100 users from 20 of
their ratings (the first call, which builds the cached fold-in context, is left out), in this process with
torch's default thread count, as a library user would call it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from _common import data_root, machine_line, markdown_table

DEFAULT_MODELS = ("mf", "svdpp", "bayes", "autorec", "deepmf", "neumf")


def latency(train, models: list[str]) -> None:
    """Median and 90th percentile of one fold-in per model (see the module docstring)."""
    import numpy as np
    import pandas as pd

    import deepmf

    rows = []
    for model in models:
        rec = deepmf.fit(train, model=model, seed=0)
        rng = np.random.default_rng(0)
        users = rng.choice(np.flatnonzero(train.user_counts() >= 20), size=101, replace=False)
        seconds = []
        for user in users:
            mine = np.flatnonzero(train.users == user)[:20]
            frame = pd.DataFrame({"item": train.item_ids.raw(train.items[mine]), "rating": train.ratings[mine]})
            start = time.perf_counter()
            rec.fold_in(frame)
            seconds.append(time.perf_counter() - start)
        seconds = sorted(seconds[1:])
        rows.append([model, f"{1000 * statistics.median(seconds):.1f}", f"{1000 * seconds[89]:.1f}"])
        print(json.dumps({"model": model, "median_ms": 1000 * statistics.median(seconds)}), flush=True)
    print("\nOne fold-in from 20 ratings (100 users of ML-100K u1.base):\n")
    print(markdown_table(["model", "median ms", "p90 ms"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--seeds", default="0", help="Comma-separated seeds (held-out users, halves, training).")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="One JSON object per run instead of the table.")
    parser.add_argument("--latency", action="store_true", help="Time fold-ins only (see above).")
    args = parser.parse_args()

    from deepmf.data.loading import load
    from deepmf.data.splits import parse_split
    from deepmf.evaluation.foldin import check_fold_in

    data = load(data_root() / "ml-100k")
    train = parse_split("u1", data)[0].train
    rows = []
    print(machine_line())
    if args.latency:
        latency(train, args.models.split(","))
        return
    for model in args.models.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            result = check_fold_in(train, model, n_users=args.users, seed=seed)
            if args.json:
                print(json.dumps({"seed": seed, **result.to_dict()}), flush=True)
            rows.append([model, seed, f"{result.fold_in:.4f}", f"{result.retrained:.4f}", f"{result.bias:.4f}",
                         f"{result.fold_in - result.retrained:+.4f}", f"{1000 * result.fold_in_seconds:.1f}"])
    print(f"\n{args.users} held-out users of ML-100K u1.base, folded in from half their ratings; RMSE on the "
          f"other half ({result.n_scored} ratings):\n")
    print(markdown_table(["model", "seed", "fold-in", "retrained", "bias fallback", "fold-in − retrained",
                          "ms per fold-in"], rows))


if __name__ == "__main__":
    main()
