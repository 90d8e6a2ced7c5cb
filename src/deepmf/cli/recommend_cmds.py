"""Commands that use a trained model folder: predict, recommend (a user, a new user, every user), rated,
similar, plot.

Each command parses its flags, calls the Python API (``deepmf.recommender``, ``deepmf.export``, ``deepmf.plots``)
and prints a rich table, or one JSON object with ``--json``. Errors are DeepMFErrors: one line on stderr, exit
code 2 (see ``cli/common.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table
from rich.text import Text

from deepmf.cli.app import app
from deepmf.cli.common import console, print_json
from deepmf.cli.options import JsonOpt, LoaderFlags, option_groups
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


def _top_columns(rec: Any) -> dict[str, str]:
    """A top-N list's columns and their headers: a score of an implicit model only orders items."""
    return {"item": "item", "title": "title", "score": "score" if rec.scores_only else "predicted"}


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
    user: Annotated[
        str | None,
        typer.Argument(help="Raw user id (or use --new-user FILE or --all-users).", show_default=False),
    ] = None,
    n: CountOpt = 10,
    include_seen: Annotated[
        bool, typer.Option("--include-seen", help="Also rank items the user rated in training.")
    ] = False,
    cold_start: ColdStartOpt = "error",
    min_ratings: MinRatingsOpt = 1,
    new_user: Annotated[
        Path | None,
        typer.Option(
            "--new-user",
            help="CSV of item,rating lines: recommend for a user the model never saw (fold-in, no retraining).",
            show_default=False,
        ),
    ] = None,
    all_users: Annotated[
        bool, typer.Option("--all-users", help="Every user's top-N, written to --out.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="File for --all-users: Parquet, or CSV if it ends in .csv (an earlier one "
                     "deepmf wrote there is replaced; any other file is left alone and is an error).",
                     show_default=False),
    ] = None,
    json: JsonOpt = False,
) -> None:
    """A user's top-N items (items they rated in training are skipped unless --include-seen); a new user's
    from a file of ratings (--new-user); or every user's, to a file (--all-users --out FILE)."""
    modes = [name for name, given_ in (("USER", user is not None), ("--new-user", new_user is not None),
                                       ("--all-users", all_users)) if given_]
    if len(modes) != 1:
        raise ConfigError("give exactly one of USER, --new-user FILE or --all-users"
                          + (f" (got {' and '.join(modes)})" if modes else ""))
    if out is not None and not all_users:
        raise ConfigError("--out goes with --all-users")
    if cold_start != "error" and user is None:
        raise ConfigError("--cold-start applies to a USER id only")
    if new_user is not None:
        if include_seen:
            raise ConfigError("--include-seen does not apply to --new-user: a new user's rated items are never "
                              "recommended back")
        _recommend_new_user(model_dir, new_user, n, min_ratings, json)
        return
    if all_users:
        _recommend_all_users(model_dir, out, n, min_ratings, include_seen, json)
        return
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
    console.print(_ranked_table(f"Top {len(top)} for user {user_id} ({rec.model_name})", top, _top_columns(rec)))
    if "cold_start" in top.attrs:
        ranked_by = "popularity" if rec.scores_only else "the global mean plus each item's bias"
        console.print(f"cold start: unknown user, ranked by {ranked_by}")


def _recommend_new_user(model_dir: Path, path: Path, n: int, min_ratings: int, json: bool) -> None:
    from deepmf.data.newuser import read_item_ratings

    ratings = read_item_ratings(path)
    rec = _load(model_dir)
    top = rec.recommend_new_user(ratings, n=n, min_ratings=min_ratings)
    unknown = top.attrs["unknown_items"]
    if json:
        print_json({"user": None, "items": _records(top), "unknown_items": unknown})
        return
    console.print(_ranked_table(f"Top {len(top)} for a new user with {len(ratings) - len(unknown)} ratings "
                                f"({rec.model_name}, fold-in)", top, _top_columns(rec)))
    if unknown:
        console.print(f"ignored {len(unknown)} rated item(s) the model does not know: "
                      f"{', '.join(map(str, unknown))}", markup=False)


def _recommend_all_users(model_dir: Path, out: Path | None, n: int, min_ratings: int, include_seen: bool,
                         json: bool) -> None:
    from deepmf.export import export_recommendations, is_deepmf_export
    from deepmf.fsutil import check_file_target

    if out is None:
        raise ConfigError("--all-users needs --out FILE (.parquet, or .csv)")
    check_file_target(out, ours=is_deepmf_export)  # before loading the model
    summary = export_recommendations(_load(model_dir), out, n=n, min_ratings=min_ratings,
                                     exclude_seen=not include_seen)
    if json:
        print_json(summary.to_dict())
        return
    console.print(f"wrote top {n} for {summary.users} users ({summary.rows} rows) to {summary.path} "
                  f"in {summary.seconds:.2f} s", markup=False)


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
