"""Request and response bodies, one pydantic model per shape; raw ids are JSON integers or strings."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

# A raw user or item id as the data set spells it (MovieLens: integers). Strict: true is not the id 1.
RawId = StrictInt | StrictStr
MAX_PAIRS = 10_000
MAX_NEW_USER_RATINGS = 10_000


class Strict(BaseModel):
    """Request bodies refuse unknown keys: a typo is a 422, not a silently ignored field."""

    model_config = ConfigDict(extra="forbid")


class ErrorDetail(BaseModel):
    detail: str = Field(description="What was wrong, in one line.")


# Documented on every route: our errors are one line, not FastAPI's list of validation errors.
ERRORS: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorDetail, "description": "Unknown user or item (or one without training ratings)"},
    413: {"model": ErrorDetail, "description": "Request body over the service's cap"},
    422: {"model": ErrorDetail, "description": "Malformed request or a value out of range"},
}


class Health(BaseModel):
    status: Literal["ok"]
    model: str = Field(description="Registry name of the model (mf, svdpp, bayes, ...).")
    n_users: int
    n_items: int
    version: str = Field(description="deepmf version.")


class ModelInfo(BaseModel):
    model: str
    version: str
    n_users: int
    n_items: int
    n_trained_items: int = Field(description="Items with training ratings: those that can be recommended.")
    rating_min: float
    rating_max: float
    rating_step: float
    has_titles: bool
    feedback: str = Field(description="explicit (ratings) or implicit (interactions: scores only order items).")
    positive: float | None = Field(
        None, description="Implicit models trained from ratings: the lowest rating that counted as an interaction "
                          "(a new user's ratings below it are not interactions).")


class ScoredItem(BaseModel):
    item: RawId
    title: str
    score: float = Field(description="Predicted rating (recommendations) or similarity (similar items).")


class UserRecommendations(BaseModel):
    user: RawId
    items: list[ScoredItem]


class RatedItem(BaseModel):
    item: RawId
    title: str
    rating: float = Field(description="The user's training rating.")
    prediction: float = Field(description="The model's prediction of it.")


class UserRatings(BaseModel):
    user: RawId
    items: list[RatedItem]


class SimilarItems(BaseModel):
    item: RawId
    title: str
    similar: list[ScoredItem]


class Pair(Strict):
    user: RawId
    item: RawId


class PredictRequest(Strict):
    pairs: list[Pair] = Field(min_length=1, max_length=MAX_PAIRS)


class PredictedPair(BaseModel):
    user: RawId
    item: RawId
    prediction: float


class Predictions(BaseModel):
    predictions: list[PredictedPair]


class ItemRating(Strict):
    item: RawId
    rating: float = Field(allow_inf_nan=False)


class NewUserRequest(Strict):
    ratings: list[ItemRating] = Field(min_length=1, max_length=MAX_NEW_USER_RATINGS)
    n: int = Field(10, ge=1, description="Number of items (at most the catalogue's size).")
    min_ratings: int = Field(0, ge=0, description="Only items with at least this many training ratings.")


class NewUserRecommendations(BaseModel):
    items: list[ScoredItem] = Field(description="Never an item the request rated.")
    unknown_items: list[RawId] = Field(description="Rated items the model does not know (left out).")


class ItemMatch(BaseModel):
    item: RawId
    title: str
    n_ratings: int = Field(description="Training ratings of the item.")


class ItemSearch(BaseModel):
    items: list[ItemMatch]


class UserMatch(BaseModel):
    user: RawId
    n_ratings: int = Field(description="Training ratings of the user.")


class UserSearch(BaseModel):
    users: list[UserMatch]
