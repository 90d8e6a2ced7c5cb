"""GET /health."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from deepmf import __version__
from deepmf.service.deps import RecommenderDep
from deepmf.service.schemas import Health

router = APIRouter(tags=["service"])


@router.get("/health", response_model=Health, summary="The model serving now")
def health(rec: RecommenderDep) -> dict[str, Any]:
    return {"status": "ok", "model": rec.model_name, "n_users": rec.n_users, "n_items": rec.n_items,
            "version": __version__}
