"""Commands that use trained models: predict, recommend, rated, similar, evaluate, compare, plot.

Each command parses its flags, calls the Python API (``deepmf.recommender``, ``deepmf.experiment``,
``deepmf.evaluation.cross_validation``, ``deepmf.plots``) and prints a rich table, or one
JSON object with ``--json``. Errors are DeepMFErrors: one line on stderr, exit code 2 (see ``cli/common.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table
from rich.text import Text

from deepmf.cli.app import app
from deepmf.cli.common import console, err_console, print_json
from deepmf.cli.metric_table import fold_table
from deepmf.cli.options import (
    ConfigOpt,
    DataArg,
    JsonOpt,
    KOpt,
    LoaderFlags,
    ModelFlags,
    ModelOpt,
    ProtocolOpt,
    QuietOpt,
    ReportOpt,
    SplitOpt,
    TrainFlags,
    ValFractionOpt,
    option_groups,
    run_options,
)
from deepmf.errors import ConfigError

ModelDirArg = Annotated[
    Path, typer.Argument(help="A model folder written by `deepmf train --out`.", show_default=False)
]
UserArg = Annotated[str, typer.Argument(help="Raw user id.", show_default=False)]
CountOpt = Annotated[int, typer.Option("-n", "--n", help="Number of items.")]
MinRatingsOpt = Annotated[
    int, typer.Option("--min-ratings", help="Only items with at least this many training ratings.")
]
ColdStartOpt = Annotated[
    str,
    typer.Option(
        "--cold-start",
        help="Unknown ids: error, or bias (global mean + the known side's bias; the answer says so).",
    ),
]
# ---- helpers ---------------------------------------------------------------------------------------------
def _load(model_dir: Path):
    from deepmf.recommender import Recommender

    return Recommender.load(model_dir)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")


def _ranked_table(title: str, frame: pd.DataFrame, columns: dict[str, str]) -> Table:
    """A rich table of a ranked frame; ``columns`` maps frame columns to headers."""
    table = Table(title=title, title_justify="left")
    table.add_column("#", justify="right")
    for header in columns.values():
        table.add_column(header, justify="left" if header in ("title", "item", "user") else "right")
    for rank, row in enumerate(frame.itertuples(index=False), start=1):
        values = row._asdict()
        table.add_row(str(rank), *(_cell(values[col]) for col in columns))
    return table


def _cell(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


# ---- single-model queries --------------------------------------------------------------------------------
@app.command()
def predict(
    model_dir: ModelDirArg,
    user: UserArg,
    item: Annotated[str, typer.Argument(help="Raw item id.", show_default=False)],
    cold_start: ColdStartOpt = "error",
    json: JsonOpt = False,
) -> None:
    """Predict one user's rating of one item."""
    rec = _load(model_dir)
    prediction = rec.predict(user, item, cold_start=cold_start)  # type: ignore[arg-type]
    if json:
        print_json(prediction.to_dict())
        return
    title = rec.title(rec.item_ids.index(item)) if item in rec.item_ids else ""
    label = f"item {prediction.item}" + (f" ({title})" if title else "")
    what = "ranking score (implicit feedback)" if rec.scores_only else "predicted rating"
    console.print(Text.assemble(f"user {prediction.user}, {label}: {what} ",
                                (f"{prediction.prediction:.3f}", "bold")))
    if prediction.cold_start:
        fallback = "the item's popularity" if rec.scores_only else "the global mean plus the known side's bias"
        console.print(f"cold start: unknown {prediction.cold_start}, answered with {fallback}")


@app.command()
def recommend(
    model_dir: ModelDirArg,
    user: UserArg,
    n: CountOpt = 10,
    include_seen: Annotated[
        bool, typer.Option("--include-seen", help="Also rank items the user rated in training.")
    ] = False,
    cold_start: ColdStartOpt = "error",
    min_ratings: MinRatingsOpt = 1,
    json: JsonOpt = False,
) -> None:
    """A user's top-N items (items they rated in training are skipped unless --include-seen)."""
    rec = _load(model_dir)
    top = rec.recommend(
        user, n=n, exclude_seen=not include_seen, cold_start=cold_start, min_ratings=min_ratings  # type: ignore[arg-type]
    )
    user_id = rec.user_ids.coerce(user)
    if json:
        payload: dict[str, Any] = {"user": user_id, "items": _records(top)}
        if "cold_start" in top.attrs:
            payload["cold_start"] = top.attrs["cold_start"]
        print_json(payload)
        return
    console.print(
        _ranked_table(
            f"Top {len(top)} for user {user_id} ({rec.model_name})",
            top,
            {"item": "item", "title": "title", "score": "score" if rec.scores_only else "predicted"},
        )
    )
    if "cold_start" in top.attrs:
        ranked_by = "popularity" if rec.scores_only else "the global mean plus each item's bias"
        console.print(f"cold start: unknown user, ranked by {ranked_by}")


@app.command()
def rated(model_dir: ModelDirArg, user: UserArg, json: JsonOpt = False) -> None:
    """A user's training ratings next to the model's predictions."""
    rec = _load(model_dir)
    table = rec.rated_vs_predicted(user)
    user_id = rec.user_ids.coerce(user)
    if json:
        print_json({"user": user_id, "items": _records(table)})
        return
    what = "interactions and their scores" if rec.scores_only else "rated items, actual vs predicted"
    console.print(
        _ranked_table(
            f"User {user_id}: {len(table)} {what} ({rec.model_name})",
            table,
            {"item": "item", "title": "title", "rating": "events" if rec.scores_only else "rating",
             "prediction": "score" if rec.scores_only else "predicted"},
        )
    )


@app.command()
def similar(
    model_dir: ModelDirArg,
    item: Annotated[
        str, typer.Argument(help="Raw item id, or a title (exact, or a unique part).", show_default=False)
    ],
    n: CountOpt = 10,
    metric: Annotated[str, typer.Option("--metric", help="cosine or dot.")] = "cosine",
    min_ratings: MinRatingsOpt = 1,
    json: JsonOpt = False,
) -> None:
    """Items whose learned vectors are closest to ITEM's."""
    rec = _load(model_dir)
    item_id = rec.find_item(item)
    neighbours = rec.similar_items(item_id, n=n, metric=metric, min_ratings=min_ratings)  # type: ignore[arg-type]
    title = rec.title(rec.item_ids.index(item_id))
    if json:
        print_json({"item": item_id, "title": title, "similar": _records(neighbours)})
        return
    console.print(
        _ranked_table(
            f"Most similar to {item_id} {title} ({metric}, {rec.model_name})",
            neighbours,
            {"item": "item", "title": "title", "score": metric},
        )
    )


@app.command()
@option_groups
def plot(
    model_dir: ModelDirArg,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the PNGs (default: MODEL_DIR/plots).", show_default=False),
    ] = None,
    test: Annotated[
        str | None,
        typer.Option(
            "--test",
            help="Ratings to draw the actual-vs-predicted "
            "histograms from, when the model folder holds "
            "no test evaluation (file, folder or "
            "edition; read with the column flags).",
            show_default=False,
        ),
    ] = None,
    loader: LoaderFlags = LoaderFlags(),
    json: JsonOpt = False,
) -> None:
    """Write learning curves, actual-vs-predicted histograms and an item-embedding map as PNGs."""
    from deepmf.plots import plot_recommender

    rec = _load(model_dir)
    if test is not None:
        from deepmf.data.scale import ScaleBounds

        # Ratings are held to the model's scale; interactions (implicit models) have their source's own.
        bounds = None if rec.scores_only else ScaleBounds.of(rec.scale, "the model's scale", step=False)
        held_out = loader.load(test, scale=bounds)
        rec.evaluation = rec.evaluate(held_out)
    files = plot_recommender(rec, out if out is not None else model_dir / "plots")
    if json:
        print_json({"files": [str(f) for f in files]})
        return
    if not files:
        console.print("nothing to plot: the folder has no history, no test evaluation and no genres")
    for path in files:
        console.print(f"wrote {path}")


# ---- experiments -----------------------------------------------------------------------------------------
@app.command()
@option_groups
def evaluate(
    data: DataArg,
    model: ModelOpt = None,
    split: SplitOpt = None,
    model_flags: ModelFlags = ModelFlags(),
    train_flags: TrainFlags = TrainFlags(),
    val_fraction: ValFractionOpt = None,
    config: ConfigOpt = None,
    k: KOpt = 10,
    protocol: ProtocolOpt = "full",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Save each fold's model under OUT/<fold>.", show_default=False),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace deepmf models already in OUT/<fold> (never anything else).")
    ] = False,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
    loader: LoaderFlags = LoaderFlags(),
) -> None:
    """Train one model per fold of a split; report each fold and mean ± std (as Surprise's cross_validate)."""
    from deepmf.data.splits import default_split, parse_split
    from deepmf.evaluation.cross_validation import cross_validate
    from deepmf.experiment import RunConfig, default_model, train_config_for
    from deepmf.folders import check_model_target
    from deepmf.recommender.evaluate import check_protocol

    run = RunConfig.read(config) if config is not None else RunConfig()
    model_name = model or run.model or default_model(loader.feedback)
    options, train_options = run_options([model_name], model_flags, train_flags, run)[model_name]
    train_config = train_config_for(model_name, train_options, loader.feedback)
    check_protocol(protocol, loader.feedback == "implicit")
    ratings = loader.load(data)
    spec = split or default_split(ratings)
    splits = parse_split(spec, ratings, seed=train_config.seed)
    if out is not None:  # before training any fold
        for chosen in splits:
            check_model_target(_fold_folder(out, chosen.name), overwrite=force)

    def on_fold(result: Any) -> None:
        if out is not None:
            result.recommender.save(_fold_folder(out, result.split), overwrite=force)
        if not json:
            key, name = ("rmse", "RMSE") if "rmse" in result.metrics else ("ndcg", f"NDCG@{k}")
            err_console.print(f"{result.split}: {name} {result.metrics.get(key, float('nan')):.4f}")

    cv = cross_validate(
        ratings,
        splits,
        model_name,
        options,
        train_config,
        valid_fraction=val_fraction,
        k=k,
        protocol=protocol,
        progress=not (quiet or json),
        on_fold=on_fold,
    )
    if json:
        print_json({"split": spec, "k": k, "protocol": protocol, **cv.to_dict()})
        return
    console.print(
        fold_table(f"{model_name} on {ratings.name} ({spec})", cv.folds, "split", k, cv.mean, cv.std)
    )


def _fold_folder(out: Path, split_name: str) -> Path:
    """OUT/<fold>, the fold's name made a folder name ("kfold:5/2" -> "kfold_5_2")."""
    return out / split_name.replace("/", "_").replace(":", "_")


# The training options of the first model that the baseline compare adds for implicit feedback shares.
POP_TRAIN_OPTIONS = ("seed", "device", "threads")


def _split_models(values: list[str]) -> list[str]:
    """``--models mf,deepmf --models blend:mf,svdpp`` -> [mf, deepmf, blend:mf,svdpp].

    A value naming a composite model (it has a ':') is taken whole, since its own arguments contain commas.
    """
    names: list[str] = []
    for value in values:
        names += [value.strip()] if ":" in value else [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise ConfigError("name at least one model with --models")
    return names


@app.command()
@option_groups
def compare(
    data: DataArg,
    models: Annotated[
        list[str],
        typer.Option(
            "--models",
            help="Comma-separated model names; repeat the flag for a composite name such as blend:mf,svdpp.",
        ),
    ],
    split: SplitOpt = None,
    model_flags: ModelFlags = ModelFlags(),
    train_flags: TrainFlags = TrainFlags(),
    val_fraction: ValFractionOpt = None,
    k: KOpt = 10,
    protocol: ProtocolOpt = "full",
    report: ReportOpt = None,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
    loader: LoaderFlags = LoaderFlags(),
) -> None:
    """Train several models on the same split(s) and print their test metrics side by side.

    A model flag (or -o KEY=VALUE) applies to every model and must be one each of them takes; -o MODEL.KEY=VALUE
    sets an option for one model. With --feedback implicit the popularity baseline pop is always among the
    models (with its own options: only the run's seed, device and threads).
    """
    from deepmf.data.splits import default_split, parse_split
    from deepmf.evaluation.cross_validation import cross_validate
    from deepmf.experiment import train_config_for
    from deepmf.models.registry import check_model_name
    from deepmf.recommender.evaluate import check_protocol

    names = _split_models(models)
    for name in names:
        check_model_name(name)  # "blend:mf,gpt" is refused before mf trains, not after
    options = run_options(names, model_flags, train_flags)
    if loader.feedback == "implicit" and "pop" not in names:
        # Any implicit model must be read against what popularity alone achieves.
        shared = {key: options[names[0]][1][key] for key in POP_TRAIN_OPTIONS if key in options[names[0]][1]}
        names.append("pop")
        options["pop"] = ({}, shared)
    # Refuse bad training options before training anything.
    configs = {name: train_config_for(name, options[name][1], loader.feedback) for name in names}
    check_protocol(protocol, loader.feedback == "implicit")
    seeds = {config.seed for config in configs.values()}
    if len(seeds) > 1:
        raise ConfigError("the models of compare share one split, and so one seed: set it for all of them "
                          "(--seed), not per model")
    if report is not None:
        from deepmf.report import check_report_target

        check_report_target(report)
    ratings = loader.load(data)
    spec = split or default_split(ratings)
    splits = parse_split(spec, ratings, seed=seeds.pop())
    rows, first_fold = [], {}
    for name in names:
        if not json:
            err_console.print(f"training {name} ...")
        cv = cross_validate(
            ratings,
            splits,
            name,
            options[name][0],
            configs[name],
            valid_fraction=val_fraction,
            k=k,
            protocol=protocol,
            progress=not (quiet or json),
            on_fold=lambda result: first_fold.setdefault(result.model_name, result.recommender),
        )
        rows.append(
            {
                "model": name,
                "folds": len(cv.folds),
                **cv.mean,
                "std": cv.std,
                "cold_test_ratings": cv.folds[0].get("cold_test_ratings"),
                "epochs_run": cv.folds[0].get("epochs_run"),
                "engine": cv.folds[0].get("engine"),
                "threads": cv.folds[0].get("threads"),
            }
        )
    report_path = None
    if report is not None:
        from deepmf.report import write_report

        report_path = write_report(
            report,
            first_fold,
            title=f"deepmf compare: {', '.join(names)}",
            data_name=ratings.name,
            split_name=splits[0].name,
        )
    if json:
        print_json(
            {"split": spec, "k": k, "protocol": protocol, "models": rows,
             **({"report": str(report_path)} if report_path else {})}
        )
        return
    sampled = " (sampled protocol: 99 negatives per held-out item)" if protocol == "sampled" else ""
    console.print(
        fold_table(
            f"{ratings.name} ({spec}): test metrics{sampled}" + (" (mean over folds)" if len(splits) > 1 else ""),
            rows,
            "model",
            k,
        )
    )
    if report_path is not None:
        console.print(f"report: {report_path}")
