"""``demo``: deepmf's first command. MF and deep MF on ML-100K (or generated MovieLens-shaped data offline),
their test metrics, and each model's top 10 and similar items side by side (``deepmf.demo``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich import box
from rich.table import Table

from deepmf.cli.app import app
from deepmf.cli.common import console, err_console, print_json
from deepmf.cli.metric_table import fold_table
from deepmf.cli.options import DirOpt, JsonOpt
from deepmf.cli.recommend_cmds import _cell


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
    console.print(fold_table(f"{result.data_name}, split {result.split}: test metrics", rows, "model", k))
    console.print(_side_by_side(f"Top 10 for user {result.user}", result.top, "predicted"))
    console.print(_side_by_side(f"Most similar to {result.item_title or result.item} (cosine of item vectors)",
                                result.similar, "cosine"))
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    console.print(
        f"report: {result.report}   models: {', '.join(str(p) for p in result.models.values())}   "
        f"({result.seconds:.1f} s)",
        markup=False,
    )
    first = next(iter(result.models.values()))
    # soft_wrap: a command must stay on one line to be copied, however narrow the terminal.
    console.print(f"next: deepmf recommend {first} {result.user}   |   deepmf serve {first}   "
                  "(the HTTP API and page; needs the serve extra)", markup=False, soft_wrap=True)


def _side_by_side(title: str, frames: dict[str, pd.DataFrame], score: str) -> Table:
    """One ranked list per model, next to each other: rank, then each model's title (or id) and score."""
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    # Titles share what the terminal has left after the rank and score columns; long ones end in an ellipsis.
    width = max(16, (console.width - 6 - (len(score) + 6) * len(frames)) // max(len(frames), 1))
    for name in frames:
        table.add_column(name, overflow="ellipsis", no_wrap=True, max_width=width)
        table.add_column(score, justify="right", no_wrap=True)
    columns = [[(str(row.title or row.item), _cell(row.score)) for row in frame.itertuples(index=False)]
               for frame in frames.values()]
    for rank in range(max(len(c) for c in columns)):
        cells = [text for column in columns for text in (column[rank] if rank < len(column) else ("", ""))]
        table.add_row(str(rank + 1), *cells)
    return table
