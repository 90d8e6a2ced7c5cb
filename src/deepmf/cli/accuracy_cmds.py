"""Accuracy commands: ``tune`` (Optuna search on validation carved from training data, never the test
part)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from deepmf.cli.app import app
from deepmf.cli.common import console, err_console, print_json
from deepmf.cli.options import DataArg, JsonOpt, LoaderFlags, ThreadsOpt, option_groups


@app.command()
@option_groups
def tune(
    data: DataArg,
    model: Annotated[str, typer.Option("--model", help="Model to tune: mf, deepmf, neumf, svdpp, bayes, "
                                                        "autorec.")] = "mf",
    trials: Annotated[int, typer.Option("--trials", help="Number of Optuna trials.")] = 20,
    split: Annotated[str, typer.Option("--split", help="Split(s) whose training parts are searched on (their test "
                                       "parts are never read): u1, canonical, random:0.2, kfold:5 ... Train with "
                                       "the same --split and --seed to test on ratings no trial saw.")
                     ] = "random:0.2",
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the best config (JSON for deepmf train --config).", show_default=False)] = None,
    val_fraction: Annotated[float, typer.Option(
        "--val-fraction", help="Share of each training part used as validation.")] = 0.1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of splits, sampler and training.")] = 0,
    threads: ThreadsOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    json: JsonOpt = False,
    loader: LoaderFlags = LoaderFlags(),
) -> None:
    """Search MODEL's options on validation ratings carved from the training part of SPLIT; test ratings are
    never read. Prints the trials and writes the best config."""
    from deepmf.data.splits import parse_split
    from deepmf.tune import tune as run_tune

    if out is not None:  # before the trials, not after
        from deepmf.folders import is_tuned_config
        from deepmf.fsutil import check_file_target

        check_file_target(out, ours=is_tuned_config)
    ratings = loader.load(data)
    splits = parse_split(split, ratings, seed=seed)
    # One bar on stderr with the best score so far and the time left; nothing under --json or --quiet.
    with Progress(TextColumn("tune {task.fields[model]}"), MofNCompleteColumn(), BarColumn(),
                  TextColumn("{task.fields[best]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=err_console, disable=json or quiet, transient=True) as bar:
        task = bar.add_task("trials", total=trials, model=model, best="")
        best = float("inf")

        def progress(record: dict[str, Any]) -> None:
            nonlocal best
            best = min(best, record["val_rmse"])
            bar.update(task, advance=1, best=f"best validation RMSE {best:.4f}")
            if not (json or quiet):
                bar.console.print(f"trial {record['trial']}: validation RMSE {record['val_rmse']:.4f}",
                                  markup=False)

        result = run_tune(ratings, splits, model, trials, valid_fraction=val_fraction, seed=seed,
                          fixed_train={"threads": threads} if threads is not None else None, on_trial=progress,
                          split_name=split)
    if out is not None:
        result.write(out)
    if json:
        print_json({**result.to_dict(), "split": split, "out": str(out) if out is not None else None})
        return
    table = Table(title=f"tune {model} on {split} (validation RMSE, {len(splits)} split(s))")
    for column in ("trial", "val RMSE", "model options", "train options"):
        table.add_column(column)
    for record in sorted(result.trials, key=lambda r: r["val_rmse"]):
        table.add_row(str(record["trial"]), f"{record['val_rmse']:.4f}", _short(record["model_options"]),
                      _short(record["train_options"]))
    console.print(table)
    console.print(f"best validation RMSE {result.best_rmse:.4f}"
                  + (f"; config written to {out}" if out is not None else ""))


def _short(options: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in options.items())
