"""Data layer: files -> Ratings (dense indices + id maps + side tables) -> splits."""

from deepmf.data.idmap import IdMap
from deepmf.data.ratings import ItemTable, Ratings, RatingScale, RatingTensors, UserTable

__all__ = ["IdMap", "ItemTable", "RatingScale", "RatingTensors", "Ratings", "UserTable"]
