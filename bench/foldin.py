"""Fold-in benchmark: new users without retraining, against retraining and the bias fallback (issue 14).

    python bench/foldin.py                         # mf, svdpp, bayes, autorec, deepmf, neumf on ML-100K u1.base
    python bench/foldin.py --models mf --seeds 0,1

50 users of ML-100K u1.base are taken out of training entirely; each is folded in from a random half of his
u1.base ratings and the other half is predicted (``deepmf.evaluation.foldin.check_fold_in``). The table gives
the RMSE on those other halves for the fold-in, for a model retrained with the first halves included, and
for the ``cold_start="bias"`` fallback; u1.test is never read. Each model trains with its tuned defaults.
"""

from __future__ import annotations

import argparse
import json

from _common import data_root, machine_line, markdown_table

DEFAULT_MODELS = ("mf", "svdpp", "bayes", "autorec", "deepmf", "neumf")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(DEFAULT_MODELS))
    parser.add_argument("--seeds", default="0", help="Comma-separated seeds (held-out users, halves, training).")
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="One JSON object per run instead of the table.")
    args = parser.parse_args()

    from deepmf.data.loading import load
    from deepmf.data.splits import parse_split
    from deepmf.evaluation.foldin import check_fold_in

    data = load(data_root() / "ml-100k")
    train = parse_split("u1", data)[0].train
    rows = []
    print(machine_line())
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
