"""POST /predict (known pairs) and POST /recommendations (a new user, folded in from the body's ratings)."""

from __future__ import annotations

from typing import Any

import pandas as pd
from fastapi import APIRouter

from deepmf.service.deps import RecommenderDep, fold_in
from deepmf.service.routes.common import check_count, rows
from deepmf.service.schemas import ERRORS, NewUserRecommendations, NewUserRequest, Predictions, PredictRequest

router = APIRouter(tags=["predictions"], responses=ERRORS)


@router.post("/predict", response_model=Predictions,
             summary="Predicted ratings of (user, item) pairs")
async def predict(body: PredictRequest, rec: RecommenderDep) -> dict[str, Any]:
    users = [pair.user for pair in body.pairs]
    items = [pair.item for pair in body.pairs]
    values = rec.predict_many(users, items)
    return {"predictions": [
        {"user": rec.user_ids.coerce(user), "item": rec.item_ids.coerce(item), "prediction": float(value)}
        for user, item, value in zip(users, items, values, strict=True)
    ]}


@router.post("/recommendations", response_model=NewUserRecommendations,
             summary="Top-N for a new user from his ratings (fold-in, no retraining)")
async def recommend_new_user(body: NewUserRequest, rec: RecommenderDep) -> dict[str, Any]:
    check_count(rec, body.n)
    ratings = pd.DataFrame({"item": pd.Series([r.item for r in body.ratings], dtype=object),
                            "rating": [r.rating for r in body.ratings]})
    top = await fold_in(rec, lambda: rec.recommend_new_user(ratings, n=body.n, min_ratings=body.min_ratings))
    return {"items": rows(top), "unknown_items": top.attrs["unknown_items"]}
