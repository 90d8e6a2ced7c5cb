"""Known users: search by id, top-N recommendations, rated items next to predictions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from deepmf.service.deps import RecommenderDep
from deepmf.service.routes.common import Count, Limit, MinRatings, SearchText, check_count, rows
from deepmf.service.schemas import ERRORS, UserRatings, UserRecommendations, UserSearch

router = APIRouter(prefix="/users", tags=["users"], responses=ERRORS)


@router.get("", response_model=UserSearch, summary="Users whose id starts with the query")
async def search_users(rec: RecommenderDep, query: SearchText = "", limit: Limit = 20) -> dict[str, Any]:
    return {"users": rows(rec.search_users(query, limit))}


@router.get("/{user}/recommendations", response_model=UserRecommendations,
            summary="A user's top-N items")
async def recommendations(user: str, rec: RecommenderDep, n: Count = 10, min_ratings: MinRatings = 0,
                          include_seen: bool = False) -> dict[str, Any]:
    check_count(rec, n)
    user_id = rec.user_ids.coerce(user)
    top = rec.recommend_records(user_id, n=n, exclude_seen=not include_seen, min_ratings=min_ratings)
    return {"user": user_id, "items": top}


@router.get("/{user}/ratings", response_model=UserRatings,
            summary="A user's training ratings next to the model's predictions")
async def ratings(user: str, rec: RecommenderDep) -> dict[str, Any]:
    user_id = rec.user_ids.coerce(user)
    return {"user": user_id, "items": rows(rec.rated_vs_predicted(user_id))}
