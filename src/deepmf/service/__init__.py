"""The HTTP service (``deepmf serve``): a FastAPI app over the same Recommender API the CLI uses.

Needs the ``[serve]`` extra (FastAPI, uvicorn, pydantic, fastapi-offline for the offline /docs page);
importing this package without it raises a MissingDependencyError that says so.
"""

from __future__ import annotations

from deepmf.extras import require

for _module in ("fastapi", "uvicorn", "pydantic", "fastapi_offline"):
    require(_module, "the HTTP service (deepmf serve)")

from deepmf.service.app import create_app  # noqa: E402
from deepmf.service.settings import ServiceSettings  # noqa: E402

__all__ = ["ServiceSettings", "create_app"]
