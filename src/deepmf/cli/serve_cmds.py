"""``deepmf serve``: the HTTP service and page over a model folder (needs the [serve] extra)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated

import typer

from deepmf.cli.app import app
from deepmf.cli.common import err_console, print_json
from deepmf.cli.options import JsonOpt
from deepmf.cli.recommend_cmds import ModelDirArg

if TYPE_CHECKING:
    from deepmf.recommender import Recommender


@app.command()
def serve(
    model_dir: ModelDirArg,
    host: Annotated[str, typer.Option("--host", help="Address to bind (0.0.0.0 exposes it to the network).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free port; the URL printed says which).")
                    ] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes sharing the port.")] = 1,
    threads: Annotated[
        int, typer.Option("--threads", help="Torch threads per worker (concurrent requests use the cores).")
    ] = 1,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Allow browser pages from this origin (repeatable; none by default).",
                     show_default=False),
    ] = None,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request (on stderr).")] = False,
    json: JsonOpt = False,
) -> None:
    """Serve MODEL_DIR over HTTP: JSON API (OpenAPI at /docs), a page at /; `kill -HUP` reloads the folder.

    Once listening it prints where (one JSON object with --json: url, model, users, items, workers, pid); logs go
    to stderr. Ctrl-C stops it (exit code 0).
    """
    from deepmf.service import ServiceSettings
    from deepmf.service.server import serve as run

    settings = ServiceSettings(cors_origins=tuple(cors_origin or ()), threads=threads)

    def announce(url: str, rec: Recommender) -> None:
        if json:
            print_json({"url": url, "model": rec.model_name, "model_dir": str(model_dir), "users": rec.n_users,
                        "items": rec.n_items, "workers": workers, "pid": os.getpid()})
        else:
            err_console.print(f"deepmf: serving {model_dir} ({rec.model_name}) on {url} (page at /, API docs at "
                              "/docs); Ctrl-C stops it", markup=False, soft_wrap=True)

    run(model_dir, host=host, port=port, workers=workers, settings=settings, access_log=access_log,
        on_listening=announce)
