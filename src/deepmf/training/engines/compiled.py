"""What the compiled CPU engines share: the model check and numpy views of the model's tables.

A compiled kernel updates a model's embedding tables in place through numpy views of their memory, so the
trained ``nn.Module`` (and its saved file) is the model itself, with no copy back.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from deepmf.errors import ConfigError


def check_model(engine: str, model: Any, device: torch.device) -> None:
    """ConfigError unless ``device`` is the CPU and ``model`` is the model named like ``engine``."""
    if torch.device(device).type != "cpu":
        raise ConfigError(f"the {engine} engine runs on cpu, not {device}")
    if getattr(model, "name", "") != engine:
        raise ConfigError(f"the {engine} engine trains {engine} models only, not {getattr(model, 'name', model)!r}")


def table_views(engine: str, model: torch.nn.Module, *names: str) -> list[np.ndarray]:
    """Numpy views sharing the memory of the model's embedding tables ``names`` (made float32 and contiguous
    first, a no-op for a fresh model, so writes through the views land in the model).

    Raises:
        ConfigError: a table lives off the CPU.
    """
    views = []
    for name in names:
        weight = getattr(model, name).weight
        if weight.device.type != "cpu":
            raise ConfigError(f"the {engine} engine runs on cpu, but {name} is on {weight.device}")
        if weight.dtype != torch.float32 or not weight.is_contiguous():
            weight.data = weight.data.to(torch.float32).contiguous()
        views.append(weight.detach().numpy())
    return views
