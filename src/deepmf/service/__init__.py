"""The HTTP service (``deepmf serve``): a FastAPI app over the same Recommender API the CLI uses.

Needs the ``[serve]`` extra (FastAPI, uvicorn, pydantic, fastapi-offline for the offline /docs page);
importing this package without it raises a ConfigError that says so.
"""

from __future__ import annotations

import importlib.util

from deepmf.errors import ConfigError

_NEEDED = {"fastapi": "fastapi", "uvicorn": "uvicorn", "pydantic": "pydantic", "fastapi_offline": "fastapi-offline"}
_missing = [package for module, package in _NEEDED.items() if importlib.util.find_spec(module) is None]
if _missing:
    raise ConfigError(f"the deepmf service needs {', '.join(_missing)}: pip install 'deepmf[serve]'")

from deepmf.service.app import create_app  # noqa: E402
from deepmf.service.settings import ServiceSettings  # noqa: E402

__all__ = ["ServiceSettings", "create_app"]
