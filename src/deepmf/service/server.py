"""``deepmf serve``: run the app under uvicorn, in one process or several, with SIGHUP reloading the model.

One process: the app's own SIGHUP handler reloads the folder. Several (``workers > 1``): uvicorn's supervisor
shares the socket between worker processes; its own SIGHUP handling would replace every worker with a fresh
process, which briefly doubles memory and, on a broken folder, kills the new worker at startup. Ours passes
the signal on instead, so each worker reloads in place exactly as a single process does: requests in flight
finish on the old model, and a folder that fails to load is refused (logged) while the old model serves on.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.supervisors import Multiprocess

from deepmf.errors import ConfigError
from deepmf.recommender import Recommender
from deepmf.service.app import create_app
from deepmf.service.settings import ServiceSettings

# Idle keep-alive connections are closed after this long. uvicorn's 5 s equals httpx's own idle expiry, and a
# client reusing a connection just as the server closes it gets a read error (seen in bench/serve_load.py);
# 75 s is nginx's default and outlasts the idle pools of common clients.
KEEP_ALIVE_SECONDS = 75
# Connections waiting to be accepted (uvicorn's default).
BACKLOG = 2048
# How `serve` hands the model folder and settings to worker processes (spawned, so they start afresh).
WORKER_ENV = "DEEPMF_SERVE_WORKER"
logger = logging.getLogger("deepmf.service")


def serve(model_dir: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
          settings: ServiceSettings | None = None, access_log: bool = False,
          on_listening: Callable[[str, Recommender], None] | None = None) -> None:
    """Load ``model_dir`` (refusing a bad folder before binding), bind, then serve it until stopped.

    Ctrl-C (SIGINT) is the ordinary way to stop a server: it shuts down gracefully and returns.

    Args:
        on_listening: called with the service's URL (the real port when ``port`` is 0) and the loaded model
            once the socket is bound, before the first request is accepted.

    Raises:
        ModelFormatError: the folder cannot be loaded.
        ConfigError: workers < 1, a port outside 0..65535, or an address that cannot be bound.
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    if not 0 <= port <= 65535:
        raise ConfigError(f"port must be in 0..65535, got {port}")
    settings = replace(settings or ServiceSettings(), reload_on_hup=True)
    recommender = Recommender.load(model_dir)
    sock = listen(host, port)
    if on_listening is not None:
        bound = sock.getsockname()[1]
        on_listening(f"http://{f'[{host}]' if ':' in host else host}:{bound}", recommender)
    options: dict[str, Any] = {"log_config": log_config(), "access_log": access_log,
                               "timeout_keep_alive": KEEP_ALIVE_SECONDS}
    try:
        if workers == 1:
            uvicorn.Server(uvicorn.Config(create_app(model_dir, settings, recommender), **options)).run([sock])
            return
        del recommender  # each worker loads its own copy
        os.environ[WORKER_ENV] = json.dumps({"model_dir": str(Path(model_dir).resolve()),
                                             "settings": settings.to_json()})
        config = uvicorn.Config(f"{__name__}:worker_app", factory=True, workers=workers, **options)
        # Older uvicorn releases took the workers' target explicitly; newer ones build it from the config.
        extra = {"target": uvicorn.Server(config).run} if "target" in inspect.signature(Multiprocess).parameters else {}
        ReloadingSupervisor(config, sockets=[sock], **extra).run()
    except KeyboardInterrupt:  # uvicorn re-raises the SIGINT it handled, after its graceful shutdown
        logger.info("stopped")
    finally:
        sock.close()


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket listening on ``host``:``port`` (0: a free port), inheritable by worker processes.

    Raises:
        ConfigError: the address cannot be resolved or bound (in use, not this machine's, no permission).
    """
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        # Listening now, not when uvicorn starts: a client told the URL may connect at once (it waits in
        # the backlog rather than being refused).
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def worker_app() -> FastAPI:
    """The app of one worker process, from what ``serve`` put in the environment."""
    spec = json.loads(os.environ[WORKER_ENV])
    return create_app(spec["model_dir"], ServiceSettings.from_json(spec["settings"]))


class ReloadingSupervisor(Multiprocess):
    """uvicorn's worker supervisor, except that SIGHUP is passed on to the workers (see the module docstring)."""

    def handle_hup(self) -> None:
        logger.info("SIGHUP: asking %d workers to reload the model", len(self.processes))
        for process in self.processes:
            if process.pid is not None:
                os.kill(process.pid, signal.SIGHUP)


def log_config() -> dict[str, Any]:
    """uvicorn's logging setup plus the ``deepmf`` logger (reloads, refused folders) on the same handler, all on
    stderr."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["deepmf"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    # stdout holds only the command's own output (one JSON object under --json): the access log goes to stderr.
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    return config
