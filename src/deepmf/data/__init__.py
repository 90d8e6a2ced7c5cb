"""Data layer: files -> Ratings (dense indices + id maps + side tables) -> splits.

``load(source)`` reads an edition name, a MovieLens folder or a ratings file; ``data_dir()`` says where
editions live; ``deepmf.data.splits`` splits; ``deepmf.data.synthetic`` generates tutorial-000 matrices.
"""

from deepmf.data.idmap import IdMap
from deepmf.data.loading import data_dir, load
from deepmf.data.ratings import ItemTable, Ratings, RatingScale, RatingTensors, UserTable

__all__ = ["IdMap", "ItemTable", "RatingScale", "RatingTensors", "Ratings", "UserTable", "data_dir", "load"]
