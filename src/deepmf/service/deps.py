"""Typed dependencies of the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from deepmf.recommender import Recommender


async def current_recommender(request: Request) -> Recommender:
    """The model serving now, taken once per request (a reload does not change it under the request)."""
    return request.app.state.models.current


RecommenderDep = Annotated[Recommender, Depends(current_recommender)]
