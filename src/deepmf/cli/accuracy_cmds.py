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
from deepmf.cli.options import (
    DataArg,
    JsonOpt,
    LoaderFlags,
    ModelFlags,
    QuietOpt,
    SplitOpt,
    TrainFlags,
    ValFractionOpt,
    option_groups,
    run_options,
)

LABELS = {"val_rmse": "RMSE", "val_ndcg": "NDCG@10"}


@app.command()
@option_groups
def tune(
    data: DataArg,
    model: Annotated[str | None, typer.Option(
        "--model", help="Model to tune: mf, deepmf, neumf, svdpp, bayes, autorec (default mf); with --feedback "
        "implicit: bpr, ials, ease, deepmf, neumf (default ials).", show_default=False)] = None,
    trials: Annotated[int, typer.Option("--trials", help="Number of Optuna trials.")] = 20,
    split: SplitOpt = None,
    model_flags: ModelFlags = ModelFlags(),
    train_flags: TrainFlags = TrainFlags(),
    val_fraction: ValFractionOpt = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Write the best config (JSON for deepmf train --config).", show_default=False)] = None,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
    loader: LoaderFlags = LoaderFlags(),
) -> None:
    """Search MODEL's options on validation ratings carved from the training part of SPLIT; test ratings are
    never read. Prints the trials and writes the best config. Rating models are scored by validation RMSE,
    implicit-feedback models (--feedback implicit) by validation NDCG@10 (full ranking).

    Train with the same --split and --seed to test on ratings no trial saw. Model and training flags (and
    -o/-t KEY=VALUE) fix those options in every trial; the search varies the others.
    """
    from deepmf.data.splits import default_split, parse_split
    from deepmf.experiment import default_model
    from deepmf.tune import DEFAULT_VALID_FRACTION
    from deepmf.tune import tune as run_tune

    model = model or default_model(loader.feedback)
    fixed_model, fixed_train = run_options([model], model_flags, train_flags)[model]
    seed = fixed_train.get("seed", 0)
    if out is not None:  # before the trials, not after
        from deepmf.folders import is_tuned_config
        from deepmf.fsutil import check_file_target

        check_file_target(out, ours=is_tuned_config)
    ratings = loader.load(data)
    split = split or default_split(ratings)
    splits = parse_split(split, ratings, seed=seed)
    # One bar on stderr with the best score so far and the time left; nothing under --json or --quiet.
    with Progress(TextColumn("tune {task.fields[model]}"), MofNCompleteColumn(), BarColumn(),
                  TextColumn("{task.fields[best]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                  console=err_console, disable=json or quiet, transient=True) as bar:
        task = bar.add_task("trials", total=trials, model=model, best="")
        best = float("inf")

        def progress(record: dict[str, Any]) -> None:
            nonlocal best
            metric = "val_ndcg" if "val_ndcg" in record else "val_rmse"
            score = record[metric]
            # RMSE: lower is better; NDCG: higher is better (best is kept as a loss, so negated).
            best = min(best, -score if metric == "val_ndcg" else score)
            bar.update(task, advance=1, best=f"best validation {LABELS[metric]} {abs(best):.4f}")
            if not (json or quiet):
                bar.console.print(f"trial {record['trial']}: validation {LABELS[metric]} {score:.4f}",
                                  markup=False)

        result = run_tune(ratings, splits, model, trials, seed=seed, fixed_model=fixed_model,
                          fixed_train=fixed_train, on_trial=progress, split_name=split,
                          valid_fraction=DEFAULT_VALID_FRACTION if val_fraction is None else val_fraction)
    if out is not None:
        result.write(out)
    if json:
        print_json({**result.to_dict(), "split": split, "out": str(out) if out is not None else None})
        return
    metric, name = result.metric, LABELS[result.metric]
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
