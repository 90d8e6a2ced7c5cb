"""Commands that use trained models: predict, recommend, rated, similar, evaluate, compare, plot, demo.

Each command parses its flags, calls the Python API (``deepmf.recommender``, ``deepmf.experiment``,
``deepmf.evaluation.cross_validation``, ``deepmf.plots``, ``deepmf.demo``) and prints a rich table, or one
JSON object with ``--json``. Errors are DeepMFErrors: one line on stderr, exit code 2 (see ``cli/common.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich import box
from rich.table import Table

from deepmf.cli.app import app
from deepmf.cli.common import console, err_console, print_json
from deepmf.cli.options import (
    DataArg,
    DeviceOpt,
    DirOpt,
    EpochsOpt,
    JsonOpt,
    KOpt,
    LoaderFlags,
    OptionOpt,
    ProtocolOpt,
    ThreadsOpt,
    given,
    option_groups,
    parse_assignments,
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
SplitOpt = Annotated[
    str | None,
    typer.Option(
        "--split",
        help="u1..u5, ua, ub, canonical (u1..u5), kfold:5, "
        "random:0.2, user:0.2, time:0.2, leave-last-out, ncf, files:TRAIN,TEST "
        "(default: u1 for ml-100k, else random:0.2; user:0.2 for implicit feedback).",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="JSON file {model, model_options, train_options} (e.g. from `deepmf tune`).",
        show_default=False,
    ),
]
TrainOptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-t",
        "--train-option",
        help="Training option KEY=VALUE (lr, batch_size, optimizer, ...; repeatable).",
        show_default=False,
    ),
]
SeedOpt = Annotated[
    int | None,
    typer.Option("--seed", help="Seed for split, initialisation and shuffling.", show_default=False),
]
EngineOpt = Annotated[
    str | None, typer.Option("--engine", help="auto, torch, numba, ...", show_default=False)
]
ValFractionOpt = Annotated[
    float | None,
    typer.Option(
        "--val-fraction",
        help="Validation share carved from training data (default: 0.05 with early stopping, else 0).",
        show_default=False,
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


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


def _default_split(data: Any, split: str | None) -> str:
    if split:
        return split
    if data.feedback == "implicit":
        return "user:0.2"  # every test user keeps a history to rank from
    return "u1" if data.meta.get("edition") == "ml-100k" else "random:0.2"


def _train_overrides(
    train_option: list[str] | None,
    epochs: int | None,
    seed: int | None,
    device: str | None,
    engine: str | None,
    threads: int | None,
) -> dict[str, Any]:
    return {
        **parse_assignments(train_option, "training option"),
        **given(epochs=epochs, seed=seed, device=device, engine=engine, threads=threads),
    }


METRIC_HEADERS = (
    ("rmse", "RMSE"),
    ("mae", "MAE"),
    ("accuracy", "acc"),
    ("precision", "P@k"),
    ("recall", "R@k"),
    ("ndcg", "NDCG@k"),
    ("map", "MAP@k"),
    ("hit_rate", "hit"),
    ("coverage", "cov"),
)


def _metric_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(key, header) for key, header in METRIC_HEADERS if any(row.get(key) is not None for row in rows)]


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
    console.print(f"user {prediction.user}, {label}: {what} [bold]{prediction.prediction:.3f}[/]")
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
            "edition).",
            show_default=False,
        ),
    ] = None,
    dir: DirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Write learning curves, actual-vs-predicted histograms and an item-embedding map as PNGs."""
    from deepmf.plots import plot_recommender

    rec = _load(model_dir)
    if test is not None:
        rec.evaluation = rec.evaluate(LoaderFlags(dir=dir).load(test))
    files = plot_recommender(rec, out if out is not None else model_dir / "plots")
    if json:
        print_json({"files": [str(f) for f in files]})
        return
    if not files:
        console.print("nothing to plot: the folder has no history, no test evaluation and no genres")
    for path in files:
        console.print(f"wrote {path}")


# ---- experiments -----------------------------------------------------------------------------------------
def _fold_table(
    title: str,
    rows: list[dict[str, Any]],
    first: str,
    k: int,
    mean: dict[str, float] | None = None,
    std: dict[str, float] | None = None,
) -> Table:
    """Metrics per row (fold or model), with mean and std rows when given; fits an 80-column terminal."""
    columns = _metric_columns(rows)
    cold = {row.get("cold_test_ratings") for row in rows} - {None}
    implicit = all(row.get("rmse") is None for row in rows)
    handled = ("ranked as misses (items) or not ranked (users)" if implicit
               else "answered by the bias fallback")
    caption = (
        f"{'/'.join(map(str, sorted(cold)))} test {'interactions' if implicit else 'ratings'} of users/items "
        f"unseen in training {handled}"
        if cold and cold != {0}
        else None
    )
    table = Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1, 0, 0),  # one space plus the box's separator between columns: fits 80 columns
    )
    table.add_column(first, justify="left", no_wrap=True, min_width=max(len(str(r.get(first))) for r in rows))
    for _, header in columns:
        table.add_column(header.replace("@k", f"@{k}"), justify="right")
    table.add_column("ep", justify="right")
    table.add_column("sec", justify="right")
    for row in rows:
        table.add_row(
            str(row.get(first)),
            *(_metric(key, row.get(key)) for key, _ in columns),
            str(row.get("epochs_run") or "–"),
            _metric("seconds", row.get("train_seconds")),
        )
    if mean is not None and std is not None and len(rows) > 1:
        table.add_section()
        for label, values in (("mean", mean), ("std", std)):
            table.add_row(
                label,
                *(_metric(key, values.get(key)) for key, _ in columns),
                "",
                _metric("seconds", values.get("train_seconds")),
            )
    return table


def _metric(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if key == "seconds":
        return f"{value:.1f}"
    return f"{value:.4f}" if key in ("rmse", "mae") else f"{value:.3f}"


@app.command()
@option_groups
def evaluate(
    data: DataArg,
    model: Annotated[
        str | None, typer.Option("--model", help="Model name (mf, deepmf, neumf, ...).", show_default=False)
    ] = None,
    split: SplitOpt = None,
    config: ConfigOpt = None,
    option: OptionOpt = None,
    train_option: TrainOptionOpt = None,
    epochs: EpochsOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    engine: EngineOpt = None,
    threads: ThreadsOpt = None,
    val_fraction: ValFractionOpt = None,
    k: KOpt = 10,
    protocol: ProtocolOpt = "full",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Save each fold's model under OUT/<fold>.", show_default=False),
    ] = None,
    loader: LoaderFlags = LoaderFlags(),
    quiet: QuietOpt = False,
    json: JsonOpt = False,
) -> None:
    """Train one model per fold of a split; report each fold and mean ± std (as Surprise's cross_validate)."""
    from deepmf.data.splits import parse_split
    from deepmf.evaluation.cross_validation import cross_validate
    from deepmf.experiment import RunConfig, train_config_for

    run = RunConfig.read(config) if config is not None else RunConfig()
    model_name = model or run.model
    if model_name is None:
        raise ConfigError("name a model with --model (or in the --config file)")
    train_values = {
        **run.train_options,
        **_train_overrides(train_option, epochs, seed, device, engine, threads),
    }
    train_config = train_config_for(model_name, train_values, loader.feedback)
    options = {**run.model_options, **parse_assignments(option, "model option")}
    ratings = loader.load(data)
    spec = _default_split(ratings, split)
    splits = parse_split(spec, ratings, seed=train_config.seed)

    def on_fold(result: Any) -> None:
        if out is not None:
            result.recommender.save(out / result.split.replace("/", "_").replace(":", "_"))
        if not json:
            key = "ndcg" if "rmse" not in result.metrics else "rmse"
            name = f"NDCG@{k}" if key == "ndcg" else "RMSE"
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
        _fold_table(f"{model_name} on {ratings.name} ({spec})", cv.folds, "split", k, cv.mean, cv.std)
    )


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
    option: OptionOpt = None,
    train_option: TrainOptionOpt = None,
    epochs: EpochsOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    threads: ThreadsOpt = None,
    val_fraction: ValFractionOpt = None,
    k: KOpt = 10,
    protocol: ProtocolOpt = "full",
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write a Markdown report with plots (first fold's models) to this folder.",
            show_default=False,
        ),
    ] = None,
    loader: LoaderFlags = LoaderFlags(),
    quiet: QuietOpt = False,
    json: JsonOpt = False,
) -> None:
    """Train several models on the same split(s) and print their test metrics side by side (with --feedback
    implicit the popularity baseline pop is always among them)."""
    from deepmf.data.splits import parse_split
    from deepmf.evaluation.cross_validation import cross_validate
    from deepmf.experiment import train_config_for

    names = _split_models(models)
    added_pop = loader.feedback == "implicit" and "pop" not in names
    if added_pop:
        names.append("pop")  # any implicit model must be read against what popularity alone achieves
    common, per_model = {}, {name: {} for name in names}
    for key, value in parse_assignments(option, "model option").items():
        target, dot, option_key = key.rpartition(".")
        if dot and target in per_model:
            per_model[target][option_key] = value
        elif dot:
            raise ConfigError(f"option {key!r} names model {target!r}, which is not in --models")
        else:
            common[key] = value
    overrides = _train_overrides(train_option, epochs, seed, device, None, threads)
    # The baseline compare adds for implicit feedback takes no options but the run's seed, device and threads.
    baseline_overrides = {key: overrides[key] for key in ("seed", "device", "threads") if key in overrides}
    configs = {
        name: train_config_for(name, baseline_overrides if added_pop and name == "pop" else overrides,
                               loader.feedback)
        for name in names
    }  # refuse bad options before training
    if added_pop:
        common_for = {name: {} if name == "pop" else common for name in names}
    else:
        common_for = {name: common for name in names}
    ratings = loader.load(data)
    spec = _default_split(ratings, split)
    splits = parse_split(spec, ratings, seed=overrides.get("seed", 0))
    rows, first_fold = [], {}
    for name in names:
        if not json:
            err_console.print(f"training {name} ...")
        cv = cross_validate(
            ratings,
            splits,
            name,
            {**common_for[name], **per_model[name]},
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
        _fold_table(
            f"{ratings.name} ({spec}): test metrics{sampled}" + (" (mean over folds)" if len(splits) > 1 else ""),
            rows,
            "model",
            k,
        )
    )
    if report_path is not None:
        console.print(f"report: {report_path}")


# ---- demo ------------------------------------------------------------------------------------------------
@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Folder for the report and the saved models.")] = Path(
        "deepmf-report"
    ),
    dir: DirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Train MF and deep MF on ML-100K, compare them, recommend, find similar movies, write a report."""
    from deepmf.demo import run_demo

    say = (lambda _: None) if json else (lambda text: err_console.print(text, markup=False, soft_wrap=True))
    result = run_demo(out, dir, say=say)
    if json:
        print_json(result.to_dict())
        return
    rows = [
        {
            "model": r.model_name,
            **r.metrics,
            "cold_test_ratings": r.cold["cold_test_ratings"],
            "epochs_run": r.recommender.summary.get("epochs_run"),
            "train_seconds": r.recommender.summary.get("train_seconds"),
        }
        for r in result.results
    ]
    k = result.results[0].metrics.get("k", 10)
    console.print(_fold_table(f"{result.data_name}, split {result.split}: test metrics", rows, "model", k))
    console.print(
        _ranked_table(
            f"Top 10 for user {result.user} ({result.top_model})",
            result.top,
            {"item": "item", "title": "title", "score": "predicted"},
        )
    )
    console.print(
        _ranked_table(
            f"Most similar to {result.item_title or result.item} ({result.top_model}, cosine)",
            result.similar,
            {"item": "item", "title": "title", "score": "cosine"},
        )
    )
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    console.print(
        f"report: {result.report}   models: {', '.join(str(p) for p in result.models.values())}   "
        f"({result.seconds:.1f} s)",
        markup=False,
    )
