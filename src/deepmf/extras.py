"""Optional dependencies: what training and inference do not need, imported only by the feature that does.

``pip install deepmf`` trains, scores, recommends and saves models. Hyperparameter search needs Optuna
(``deepmf[tune]``), pictures need matplotlib (``deepmf[plots]``), a TensorBoard log needs tensorboard
(``deepmf[tensorboard]``), the HTTP service needs FastAPI and uvicorn (``deepmf[serve]``); ``deepmf[all]`` has
everything. A missing one is one clear line, never a traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from deepmf.errors import MissingDependencyError

# import name -> (pip package, deepmf extra that installs it)
EXTRAS: dict[str, tuple[str, str]] = {
    "optuna": ("optuna", "tune"),
    "matplotlib": ("matplotlib", "plots"),
    "tensorboard": ("tensorboard", "tensorboard"),
    "fastapi": ("fastapi", "serve"),
    "uvicorn": ("uvicorn", "serve"),
    "pydantic": ("pydantic", "serve"),
    "fastapi_offline": ("fastapi-offline", "serve"),
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` (or a submodule of one of ``EXTRAS``) for ``purpose``.

    Raises:
        MissingDependencyError: it is not installed; the message says which extra installs it.
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        package, extra = EXTRAS[module.partition(".")[0]]
        raise MissingDependencyError(f"{purpose} needs the optional package {package}, which is not installed: "
                                     f"pip install 'deepmf[{extra}]'") from None
