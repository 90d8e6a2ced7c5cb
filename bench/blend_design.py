"""How the blend's defaults were chosen, on validation ratings only (no test file is read).

    DEEPMF_DATA=../shared/data python bench/blend_design.py
    DEEPMF_DATA=../shared/data python bench/blend_design.py --candidates all     # every probe (~8 min)

For each canonical ML-100K fold (u1..u5) the script takes the training part only, carves the 10 % the blend
engine carves for its weights (``validation_split(train, 0.1, seed)``), trains every candidate member on the
rest exactly as the engine does (tuned defaults, early stopping on the carve only for members that stop
early), and predicts the carved ratings (at their own days for time-aware members). Each blend is then scored
by 10-fold cross-validation of its ridge weights over those carved ratings, so a blend is never scored on
ratings its weights were fit on; the table gives the mean over the five folds. Test parts are never loaded.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import torch

from _common import data_root, machine_line, markdown_table
from deepmf.data import load
from deepmf.data.splits import parse_split, validation_split
from deepmf.experiment import train_config_for
from deepmf.models.registry import create_model
from deepmf.training.engines.blend import clipped_predictions, ridge_weights
from deepmf.training.trainer import Trainer

# name -> (model, model options, training options)
CANDIDATES: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "mf": ("mf", {}, {}),
    "svdpp": ("svdpp", {}, {}),
    "autorec": ("autorec", {}, {}),
    "deepmf": ("deepmf", {}, {}),
    "bayes200": ("bayes", {"samples": 50}, {"epochs": 200}),
    "bayes": ("bayes", {}, {}),
    "bayes600": ("bayes", {"samples": 200}, {"epochs": 600}),
    "bayes-r16": ("bayes", {"rank": 16}, {}),
    "bayes1200": ("bayes", {"samples": 300}, {"epochs": 1200}),
    "bayes-seed1": ("bayes", {"samples": 200}, {"epochs": 600, "seed": 1}),
    "bayes-r5": ("bayes", {"rank": 5}, {}),
    "bayes-plain": ("bayes", {"implicit_user": False, "implicit_item": False}, {}),
    "bayes-nodate": ("bayes", {"date": False}, {}),
    "autorec-h500": ("autorec", {"hidden": 500}, {}),
}
BASE = "mf,svdpp,bayes600,autorec"
BLENDS = (
    "mf,svdpp,bayes200,autorec",
    "mf,svdpp,bayes,autorec",
    BASE,
    "bayes600,autorec",
    "mf,svdpp,bayes1200,autorec",
    *(f"{BASE},{extra}" for extra in ("bayes-seed1", "bayes-r5", "bayes-plain", "bayes-nodate", "autorec-h500",
                                      "deepmf", "bayes-r16")),
)
VALID_FRACTION = 0.1  # the blend's default carve
CV_FOLDS = 10


def member_predictions(names: list[str], seed: int) -> list[dict[str, np.ndarray]]:
    """Per canonical fold: the carved ratings and each candidate's clipped predictions of them."""
    data = load(data_root() / "ml-100k")
    folds = []
    for split in parse_split("canonical", data):
        fit_part, valid = validation_split(split.train, VALID_FRACTION, seed=seed)
        valid_tensors = valid.to("cpu", timestamps=True)
        columns: dict[str, np.ndarray] = {"rating": valid.ratings.astype(np.float64)}
        for name in names:
            model_name, options, train_options = CANDIDATES[name]
            config = train_config_for(model_name, {"seed": seed, **train_options})  # a candidate may set its own
            torch.manual_seed(seed)
            model = create_model(model_name, fit_part, **options)
            start = time.perf_counter()
            steered = config.steered_by_validation
            Trainer(config, progress=False).fit(model, fit_part, valid if steered else None)
            columns[name] = clipped_predictions(model, valid_tensors)
            error = float(np.sqrt(np.mean((columns[name] - columns["rating"]) ** 2)))
            print(f"{split.name} {name}: carve RMSE {error:.4f} in {time.perf_counter() - start:.1f} s", flush=True)
        folds.append(columns)
    return folds


def cross_validated_rmse(x: np.ndarray, y: np.ndarray, ridge: float, seed: int) -> float:
    """RMSE of ridge-blended, clipped predictions, each rating scored by weights fit without it."""
    order = np.random.default_rng(seed).permutation(len(y))
    squared = 0.0
    for part in np.array_split(order, CV_FOLDS):
        fit = np.ones(len(y), dtype=bool)
        fit[part] = False
        weights, intercept = ridge_weights(x[fit], y[fit], ridge)
        squared += float(((np.clip(intercept + x[part] @ weights, 1, 5) - y[part]) ** 2).sum())
    return float(np.sqrt(squared / len(y)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", default="mf,svdpp,autorec,bayes200,bayes,bayes600,bayes-plain",
                        help=f"members to train ('all', or from {', '.join(CANDIDATES)})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ridge", type=float, default=1.0, help="the blend's default ridge penalty")
    args = parser.parse_args()
    names = list(CANDIDATES) if args.candidates == "all" else [n for n in args.candidates.split(",") if n]
    unknown = sorted(set(names) - set(CANDIDATES))
    if unknown:
        raise SystemExit(f"unknown candidate(s) {', '.join(unknown)}: choose from {', '.join(CANDIDATES)}")
    print(machine_line())
    folds = member_predictions(names, args.seed)
    rows = []
    for name in names:
        errors = [float(np.sqrt(np.mean((f[name] - f["rating"]) ** 2))) for f in folds]
        rows.append([name, f"{np.mean(errors):.4f}", " / ".join(f"{e:.4f}" for e in errors)])
    for blend in BLENDS:
        members = blend.split(",")
        if not set(members) <= set(names):
            continue
        errors = [cross_validated_rmse(np.stack([f[m] for m in members], axis=1), f["rating"], args.ridge,
                                       args.seed) for f in folds]
        rows.append([f"blend {blend}", f"{np.mean(errors):.4f}", " / ".join(f"{e:.4f}" for e in errors)])
    print(markdown_table(["members / blend", "carve RMSE (mean)", "u1 / u2 / u3 / u4 / u5"], rows))


if __name__ == "__main__":
    main()
