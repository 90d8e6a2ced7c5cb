"""Accuracy commands: ``tune`` (Optuna search on validation carved from training data, never the test
part)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from deepmf.cli.app import app
from deepmf.cli.common import console, err_console, print_json
from deepmf.cli.options import DataArg, JsonOpt, LoaderFlags, option_groups


@app.command()
@option_groups
def tune(
    data: DataArg,
    model: Annotated[str, typer.Option("--model", help="Model to tune: mf, deepmf, neumf, svdpp, bayes, "
                                                        "autorec; implicit feedback: bpr, ials, ease, deepmf, "
                                                        "neumf.")] = "mf",
    trials: Annotated[int, typer.Option("--trials", help="Number of Optuna trials.")] = 20,
    split: Annotated[str, typer.Option("--split", help="Split(s) whose training parts are searched on: u1, "
                                                        "canonical, random:0.2, kfold:5 ...")] = "random:0.2",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the best config (JSON for deepmf train --config).", show_default=False)] = None,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", help="Share of each training part used as validation.")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of splits, sampler and training.")] = 0,
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads per trial (default: all).",
                                                show_default=False)] = None,
    json: JsonOpt = False,
    loader: LoaderFlags = LoaderFlags(),
) -> None:
    """Search MODEL's options on validation ratings carved from the training part of SPLIT; test ratings are
    never read. Prints the trials and writes the best config. Rating models are scored by validation RMSE,
    implicit-feedback models by validation NDCG@10 (full ranking)."""
    from deepmf.data.splits import parse_split
    from deepmf.tune import tune as run_tune

    ratings = loader.load(data)
    splits = parse_split(split, ratings, seed=seed)

    label = {"val_rmse": "RMSE", "val_ndcg": "NDCG@10"}

    def progress(record: dict[str, Any]) -> None:
        if not json:
            metric = "val_ndcg" if "val_ndcg" in record else "val_rmse"
            err_console.print(f"trial {record['trial']}: validation {label[metric]} {record[metric]:.4f}")

    result = run_tune(ratings, splits, model, trials, valid_fraction=val_fraction, seed=seed,
                      fixed_train={"threads": threads} if threads is not None else None, on_trial=progress)
    if out is not None:
        result.write(out)
    if json:
        print_json({**result.to_dict(), "split": split, "out": str(out) if out is not None else None})
        return
    metric, name = result.metric, label[result.metric]
    table = Table(title=f"tune {model} on {split} (validation {name}, {len(splits)} split(s))")
    for column in ("trial", f"val {name}", "model options", "train options"):
        table.add_column(column)
    for record in sorted(result.trials, key=lambda r: r[metric], reverse=metric == "val_ndcg"):
        table.add_row(str(record["trial"]), f"{record[metric]:.4f}", _short(record["model_options"]),
                      _short(record["train_options"]))
    console.print(table)
    console.print(f"best validation {name} {result.best_score:.4f}"
                  + (f"; config written to {out}" if out is not None else ""))


def _short(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in options.items())
