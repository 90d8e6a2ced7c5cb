"""Data commands: ``datasets``, ``info``, ``download``. The options they share with other commands (DATA and
the loader flags) live in ``deepmf.cli.options``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from deepmf.cli.app import app
from deepmf.cli.common import console, err_console, print_json
from deepmf.cli.options import DataArg, DirOpt, JsonOpt, LoaderFlags, option_groups


def _count(value: int | None) -> str:
    # None: not published (ml-32m's rated items) or changing between releases (ml-latest).
    return "?" if value is None else f"{value:,}"


@app.command()
def datasets(dir: DirOpt = None, json: JsonOpt = False) -> None:
    """List every known MovieLens edition: size, official URL, and whether it is in the data folder."""
    from deepmf.data.loading import data_dir, edition_path, is_present
    from deepmf.data.movielens import EDITIONS

    rows = [
        {
            "name": e.name,
            "n_ratings": e.n_ratings,
            "n_users": e.n_users,
            "n_items": e.n_items,
            "scale": e.scale.to_dict(),
            "url": e.url,
            "checksum": "sha256" if e.sha256 else ("md5" if e.md5 else None),
            "present": is_present(e.name, dir),
            "path": str(edition_path(e.name, dir)),
            "description": e.description,
        }
        for e in EDITIONS.values()
    ]
    if json:
        print_json({"data_dir": str(data_dir(dir)), "datasets": rows})
        return
    table = Table(title=f"MovieLens editions (data folder: {data_dir(dir)})")
    for column, justify in (
        ("name", "left"),
        ("ratings", "right"),
        ("users", "right"),
        ("items", "right"),
        ("present", "center"),
        ("url", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        table.add_row(
            row["name"],
            _count(row["n_ratings"]),
            _count(row["n_users"]),
            _count(row["n_items"]),
            "yes" if row["present"] else "-",
            row["url"],
        )
    console.print(table)


@app.command()
@option_groups
def info(data: DataArg, loader: LoaderFlags = LoaderFlags(), json: JsonOpt = False) -> None:
    """Describe a data set: sizes, rating scale, density, date range, side tables."""
    from deepmf.data.describe import describe, scale_text

    summary = describe(loader.load(data))
    if json:
        print_json(summary)
        return
    table = Table(title=f"{summary['name']}", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    side = summary["side_tables"]
    genres = f"{side['genres']} genres" if side["genres"] else "no genres"
    per_user, per_item = summary["ratings_per_user"], summary["ratings_per_item"]
    rows = [
        ("edition", summary["edition"] or "(your file)"),
        ("path", summary["path"] or ""),
        ("ratings", f"{summary['n_ratings']:,}"),
        ("users", f"{summary['n_users']:,}"),
        ("items", f"{summary['n_items']:,}"),
        ("rating scale", scale_text(summary["scale"])),
        (
            "observed ratings",
            f"{summary['rating_min']:g} .. {summary['rating_max']:g}, mean {summary['rating_mean']:.3f}",
        ),
        ("feedback", summary["feedback"] + (f" (ratings >= {summary['positive']:g})"
                                            if summary["positive"] is not None else "")),
        ("density", f"{summary['density']:.4%}"),
        ("ratings per user", f"min {per_user['min']}, median {per_user['median']:g}, max {per_user['max']}"),
        ("ratings per item", f"min {per_item['min']}, median {per_item['median']:g}, max {per_item['max']}"),
        ("dates", f"{summary['date_first']} .. {summary['date_last']}" if summary["date_first"] else "-"),
        (
            "side tables",
            ", ".join(
                [
                    *(["titles"] if side["item_titles"] else []),
                    genres,
                    *(["user demographics"] if side["user_demographics"] else []),
                ]
            ),
        ),
    ]
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


@app.command()
def download(
    name: Annotated[str, typer.Argument(help="Edition to download (see `deepmf datasets`).", show_default=False)],
    dir: DirOpt = None,
    force: Annotated[bool, typer.Option("--force", help="Download again even if present.")] = False,
    json: JsonOpt = False,
) -> None:
    """Download an official MovieLens zip, verify its checksum, and extract it safely into the data folder."""
    from deepmf.data.download import download as fetch
    from deepmf.data.movielens import edition

    edition(name)  # an unknown name fails here, before any progress output
    # The bar goes to stderr, and only on a terminal: --json output and logs stay clean.
    with Progress(
        TextColumn("{task.description}", style="progress.description", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err_console,
        transient=True,
        disable=json or not err_console.is_terminal,
    ) as bar:
        task = bar.add_task(name, total=None)
        result = fetch(
            name, dir, force=force, progress=lambda done, total: bar.update(task, completed=done, total=total)
        )
    if result.verified == "unverified":
        err_console.print(
            f"warning: no checksum is known for {name}; the archive is unverified",
            style="yellow",
            markup=False,
        )
    if json:
        print_json(
            {
                "name": result.name,
                "path": str(result.path),
                "url": result.url,
                "verified": result.verified,
                "bytes": result.n_bytes,
                "already_present": result.already_present,
            }
        )
        return
    if result.already_present:
        console.print(f"{name} is already in {result.path} (use --force to download again)", markup=False)
    else:
        console.print(
            f"{name}: {result.n_bytes:,} bytes from {result.url}, checksum {result.verified}, "
            f"extracted to {result.path}",
            markup=False,
        )
