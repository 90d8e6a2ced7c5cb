"""MovieLens, every edition: where its official zip lives and how to verify it, how to read its files.

* ``editions``: the ``EDITIONS`` table (name, folder, layout, official counts, scale, URL, checksums), ``edition``.
* ``layouts``: the four file layouts ("100k", "1m", "10m", "csv"): ``detect_layout``, ``detect_edition``,
  ``read_rating_file`` (rating columns parsed as the edition's types).
* ``side_tables``: titles and genres of the movies, demographics of the users, aligned to the rated ids.
* ``loader``: ``load_movielens``, a whole edition folder as ``Ratings`` with its side tables, its ratings
  checked against the edition's scale.
"""

from deepmf.data.movielens.editions import BASE_URL, EDITIONS, HALF_STARS, STARS, Edition, edition
from deepmf.data.movielens.layouts import detect_edition, detect_layout, read_rating_file
from deepmf.data.movielens.loader import load_movielens

__all__ = [
    "BASE_URL",
    "EDITIONS",
    "HALF_STARS",
    "STARS",
    "Edition",
    "detect_edition",
    "detect_layout",
    "edition",
    "load_movielens",
    "read_rating_file",
]
