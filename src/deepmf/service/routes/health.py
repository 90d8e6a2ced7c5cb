"""GET /health and GET /model."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from deepmf import __version__
from deepmf.service.deps import RecommenderDep
from deepmf.service.schemas import ERRORS, Health, ModelInfo

router = APIRouter(tags=["service"], responses=ERRORS)


@router.get("/health", response_model=Health, summary="The model serving now")
async def health(rec: RecommenderDep) -> dict[str, Any]:
    return {"status": "ok", "model": rec.model_name, "n_users": rec.n_users, "n_items": rec.n_items,
            "version": __version__}


@router.get("/model", response_model=ModelInfo, summary="The model's sizes and rating scale (for the page)")
async def model_info(rec: RecommenderDep) -> dict[str, Any]:
    scale = rec.scale
    return {"model": rec.model_name, "version": __version__, "n_users": rec.n_users, "n_items": rec.n_items,
            "n_trained_items": int((rec.seen.item_counts() > 0).sum()), "rating_min": scale.minimum,
            "rating_max": scale.maximum, "rating_step": scale.step, "has_titles": rec.item_table is not None,
            "feedback": rec.feedback, "positive": rec.positive}
