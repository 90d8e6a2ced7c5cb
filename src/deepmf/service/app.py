"""``create_app(model_dir, settings)``: the FastAPI app of ``deepmf serve``.

A lifespan loads the Recommender once into ``app.state.models`` (a ``ModelHolder``; with
``settings.reload_on_hup`` a SIGHUP reloads it atomically). Routes are thin: they parse, call the same
Recommender methods the CLI calls, and return pydantic-checked JSON. Routes that answer in well under a
millisecond (lookups, top-N of a known user, similar items, predictions) are ``async def`` and run on the event
loop: handing them to FastAPI's thread pool cost more CPU than the work (bench/serve_load.py). Fold-in of a new
user (up to ~0.2 s for deep models) runs on one long-lived thread unless the model's fold-ins were measured
quick (``deps.fold_in``).
Errors are mapped once (``errors.py``): unknown id 404, bad value 422.
The page at ``/`` is static HTML/JS/CSS shipped in the package (no CDN), and ``/docs`` serves Swagger UI from
fastapi-offline's bundled files, so both work without a network.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from deepmf import __version__
from deepmf.recommender import Recommender
from deepmf.service.errors import install_error_handlers
from deepmf.service.middleware import BodyLimit
from deepmf.service.routes import health, items, predictions, users
from deepmf.service.settings import ServiceSettings
from deepmf.service.state import ModelHolder

logger = logging.getLogger("deepmf.service")
STATIC = Path(__file__).parent / "static"
DESCRIPTION = ("Recommendations from a trained deepmf model folder: known users' top-N and ratings, similar "
               "items, predictions of (user, item) pairs, and top-N for new users from their ratings (fold-in, "
               "no retraining). The page at / uses the same endpoints.")


def create_app(model_dir: str | os.PathLike[str], settings: ServiceSettings | None = None,
               recommender: Recommender | None = None) -> FastAPI:
    """The service's app for the model folder ``model_dir``.

    Args:
        model_dir: a folder written by ``Recommender.save`` / ``deepmf train --out``.
        settings: body cap, CORS origins, SIGHUP reload, threads (defaults: ``ServiceSettings()``).
        recommender: the folder's Recommender if already loaded (``deepmf serve`` loads it first to refuse a
            bad folder with one line before binding the port); None loads it at startup.
    """
    settings = settings or ServiceSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.threads is not None:
            import torch

            torch.set_num_threads(settings.threads)
        if not hasattr(app.state, "models"):
            app.state.models = ModelHolder(model_dir)
        unhook = _reload_on_hup(app.state.models) if settings.reload_on_hup else None
        yield
        if unhook is not None:
            unhook()

    app = FastAPIOffline(title="deepmf", version=__version__, description=DESCRIPTION, lifespan=lifespan)
    if recommender is not None:  # ready without the lifespan too (schemathesis' per-call ASGI clients)
        app.state.models = ModelHolder(model_dir, recommender)
    install_error_handlers(app)
    if settings.cors_origins:  # closed unless origins are named
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["content-type"])
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    for module in (health, users, items, predictions):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app


def _reload_on_hup(models: ModelHolder) -> Callable[[], None] | None:
    """Reload ``models`` in a worker thread on SIGHUP (requests keep being served meanwhile)."""
    loop = asyncio.get_running_loop()

    def on_hup() -> None:
        logger.info("SIGHUP: reloading %s", models.model_dir)
        loop.run_in_executor(None, models.reload)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    except (ValueError, RuntimeError, NotImplementedError, AttributeError):  # not the main thread, or Windows
        logger.warning("SIGHUP cannot be handled in this process: the model will not reload on it")
        return None
    return lambda: loop.remove_signal_handler(signal.SIGHUP)
