"""``export``: a trained model's user and item vectors and biases as parquet, in raw ids (``deepmf.export``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from deepmf.cli.app import app
from deepmf.cli.common import console, print_json
from deepmf.cli.options import JsonOpt


@app.command()
def export(
    model_dir: Annotated[Path, typer.Argument(help="A model folder written by `deepmf train --out`.",
                                              show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The parquet file to write (an earlier export there is "
                                      "replaced; any other file is left alone and is an error).")
                   ] = Path("vectors.parquet"),
    json: JsonOpt = False,
) -> None:
    """Write the model's user and item vectors and biases, with raw ids and titles, to a parquet file."""
    from deepmf.export import export_vectors
    from deepmf.recommender import Recommender

    rec = Recommender.load(model_dir)
    path = export_vectors(rec, out)
    summary = {"out": str(path), "model": rec.model_name, "users": rec.n_users, "items": rec.n_items}
    if json:
        print_json(summary)
        return
    console.print(f"wrote {path}: {rec.n_users:,} user and {rec.n_items:,} item rows "
                  "(side, id, title, ratings, bias, vector)", markup=False)
