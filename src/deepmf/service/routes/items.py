"""Items: search by title or id, similar items."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from deepmf.service.deps import RecommenderDep
from deepmf.service.routes.common import Count, Limit, MinRatings, SearchText, check_count, rows
from deepmf.service.schemas import ERRORS, ItemSearch, SimilarItems

router = APIRouter(prefix="/items", tags=["items"], responses=ERRORS)


@router.get("", response_model=ItemSearch, summary="Items by id or title (most rated first)")
async def search_items(rec: RecommenderDep, query: SearchText = "", limit: Limit = 20) -> dict[str, Any]:
    return {"items": rows(rec.search_items(query, limit))}


@router.get("/{item}/similar", response_model=SimilarItems,
            summary="Items whose learned vectors are closest (cosine)")
async def similar(item: str, rec: RecommenderDep, n: Count = 10, min_ratings: MinRatings = 0) -> dict[str, Any]:
    check_count(rec, n)
    item_id = rec.item_ids.coerce(item)
    neighbours = rec.similar_item_records(item_id, n=n, min_ratings=min_ratings)
    return {"item": item_id, "title": rec.title(rec.item_ids.index(item_id)), "similar": neighbours}
