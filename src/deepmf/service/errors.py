"""Our typed errors and FastAPI's validation errors mapped to HTTP statuses, once, as one-line details."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from deepmf.errors import DeepMFError, ModelFormatError, ResourceError, UnknownIdError

logger = logging.getLogger("deepmf.service")


def _detail(status: int, message: str) -> JSONResponse:
    return JSONResponse({"detail": " ".join(str(message).split())}, status_code=status)


def status_of(exc: DeepMFError) -> int:
    """404 for an unknown (or untrained) id, 503 for a model that cannot be loaded or memory the server lacks (the
    request may succeed later or elsewhere), else 422 (bad value)."""
    if isinstance(exc, UnknownIdError):
        return 404
    if isinstance(exc, (ModelFormatError, ResourceError)):
        return 503
    return 422


def install_error_handlers(app: FastAPI) -> None:
    """Every error a client can cause becomes a 4xx with ``{"detail": "<one line>"}``; never a traceback."""

    @app.exception_handler(DeepMFError)
    async def deepmf_error(request: Request, exc: DeepMFError) -> JSONResponse:
        return _detail(status_of(exc), str(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()))
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return _detail(422, f"{where}: {first.get('msg', 'invalid')}{more}" if where else first.get("msg", ""))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        # FastAPI answers a body it cannot decode (not UTF-8) with 400; a malformed body is a 422 here.
        status = 422 if exc.status_code == 400 else exc.status_code
        response = _detail(status, str(exc.detail))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A bug, not the client's fault: logged with its traceback here, answered without one.
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return _detail(500, "internal error (logged by the server)")
