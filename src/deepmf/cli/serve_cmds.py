"""``deepmf serve``: the HTTP service and page over a model folder (needs the [serve] extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from deepmf.cli.app import app
from deepmf.cli.common import err_console
from deepmf.cli.recommend_cmds import ModelDirArg


@app.command()
def serve(
    model_dir: ModelDirArg,
    host: Annotated[str, typer.Option("--host", help="Address to bind (0.0.0.0 exposes it to the network).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes sharing the port.")] = 1,
    threads: Annotated[
        int, typer.Option("--threads", help="Torch threads per worker (concurrent requests use the cores).")
    ] = 1,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option("--cors-origin", help="Allow browser pages from this origin (repeatable; none by default).",
                     show_default=False),
    ] = None,
    access_log: Annotated[bool, typer.Option("--access-log", help="Log every request.")] = False,
) -> None:
    """Serve MODEL_DIR over HTTP: JSON API (OpenAPI at /docs), a page at /; `kill -HUP` reloads the folder."""
    from deepmf.service import ServiceSettings
    from deepmf.service.server import serve as run

    settings = ServiceSettings(cors_origins=tuple(cors_origin or ()), threads=threads)
    err_console.print(f"deepmf: serving {model_dir} on http://{host}:{port} (page at /, API docs at /docs)",
                      markup=False, soft_wrap=True)
    run(model_dir, host=host, port=port, workers=workers, settings=settings, access_log=access_log)
