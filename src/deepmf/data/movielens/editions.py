"""Every MovieLens edition: its name, folder, file layout, official counts, rating scale, where its official zip
lives and how to verify it (``download`` uses the checksums; ``deepmf datasets`` lists the table).
"""

from __future__ import annotations

from dataclasses import dataclass

from deepmf.data.ratings import RatingScale
from deepmf.errors import DataError

BASE_URL = "https://files.grouplens.org/datasets/movielens"

STARS = RatingScale(1.0, 5.0, 1.0)
HALF_STARS = RatingScale(0.5, 5.0, 0.5)

# Checksums: sha256 and zip sizes come from TensorFlow Datasets' pinned list
# (tensorflow/datasets, tensorflow_datasets/url_checksums/movielens.txt); md5s are GroupLens' own published
# ``<zip>.md5`` values, as pinned by e.g. eli-osherovich/papers_with_code datasets/movielens/dl_config.py.
# ml-32m's sha256 and size come from a single third-party source (a public project's ML-32M data manifest,
# hashed by its authors from the official zip); a mismatch is reported as such, never silently accepted.
# ml-latest has no checksum (GroupLens re-releases it over time): the downloader marks it unverified.
_TFDS = "sha256 from tensorflow_datasets/url_checksums/movielens.txt"
_GL_MD5 = "md5 published by GroupLens (<zip>.md5)"
_ML32M = "sha256 from a third-party ML-32M data manifest (single source)"


@dataclass(frozen=True)
class Edition:
    """One MovieLens release.

    Attributes:
        name: the name users type ("ml-100k").
        folder: the folder its zip extracts to ("ml-10M100K" for ml-10m).
        layout: file layout: "100k", "1m", "10m" or "csv".
        n_ratings, n_users, n_items: official counts (rated items), None if unpublished or changing.
        scale: declared rating scale.
        sha256, md5: checksum of the zip (sha256 preferred), None where unknown.
        size: zip size in bytes, None where unknown.
        checksum_source: where the checksum came from.
        description: one line for ``deepmf datasets``.
    """

    name: str
    folder: str
    layout: str
    n_ratings: int | None
    n_users: int | None
    n_items: int | None
    scale: RatingScale
    sha256: str | None = None
    md5: str | None = None
    size: int | None = None
    checksum_source: str = ""
    description: str = ""

    @property
    def url(self) -> str:
        """Official GroupLens download URL of the zip."""
        return f"{BASE_URL}/{self.name}.zip"

    @property
    def zip_name(self) -> str:
        return f"{self.name}.zip"


EDITIONS: dict[str, Edition] = {
    e.name: e
    for e in (
        Edition(
            "ml-100k",
            "ml-100k",
            "100k",
            100_000,
            943,
            1_682,
            STARS,
            sha256="50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
            md5="0e33842e24a9c977be4e0107933c0723",
            size=4_924_029,
            checksum_source=_TFDS,
            description="1998; demographics, 19 genres, canonical u1..u5/ua/ub splits",
        ),
        Edition(
            "ml-1m",
            "ml-1m",
            "1m",
            1_000_209,
            6_040,
            3_706,
            STARS,
            sha256="a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
            md5="c4d9eecfca2ab87c1945afe126590906",
            size=5_917_549,
            checksum_source=_TFDS,
            description="2003; demographics (age buckets, occupation codes), 18 genres",
        ),
        Edition(
            "ml-10m",
            "ml-10M100K",
            "10m",
            10_000_054,
            69_878,
            10_677,
            HALF_STARS,
            md5="ce571fd55effeba0271552578f2648bd",
            checksum_source=_GL_MD5,
            description="2009; half-star ratings, '::' separated",
        ),
        Edition(
            "ml-20m",
            "ml-20m",
            "csv",
            20_000_263,
            138_493,
            26_744,
            HALF_STARS,
            sha256="96f243c338a8665f6bcc89c53edf6ee39162a846940de6b7c8c48aeada765ff3",
            md5="cd245b17a1ae2cc31bb14903e1204af3",
            size=198_702_078,
            checksum_source=_TFDS,
            description="2015; CSV, tag genome",
        ),
        Edition(
            "ml-25m",
            "ml-25m",
            "csv",
            25_000_095,
            162_541,
            59_047,
            HALF_STARS,
            sha256="8b21cfb7eb1706b4ec0aac894368d90acf26ebdfb6aced3ebd4ad5bd1eb9c6aa",
            md5="6b51fb2759a8657d3bfcbfc42b592ada",
            size=261_978_986,
            checksum_source=_TFDS,
            description="2019; CSV, tag genome",
        ),
        Edition(
            "ml-32m",
            "ml-32m",
            "csv",
            32_000_204,
            200_948,
            None,  # its README counts the 87,585 movies listed, not how many are rated
            HALF_STARS,
            sha256="e4a68655d7386b8f95f2f2424b2ff975dfdd15ffd59e0d864a14dca43e99d6ee",
            size=238_950_008,
            checksum_source=_ML32M,
            description="2023; CSV",
        ),
        Edition(
            "ml-latest-small",
            "ml-latest-small",
            "csv",
            100_836,
            610,
            9_724,
            HALF_STARS,
            sha256="696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436",
            size=978_202,
            checksum_source=_TFDS,
            description="small CSV edition for education (2018 snapshot)",
        ),
        Edition(
            "ml-latest",
            "ml-latest",
            "csv",
            None,
            None,
            None,
            HALF_STARS,
            description="full latest CSV edition; re-released over time (checksum unverified)",
        ),
    )
}


def edition(name: str) -> Edition:
    """The edition called ``name``. Raises DataError listing the known names."""
    try:
        return EDITIONS[name]
    except KeyError:
        raise DataError(f"unknown MovieLens edition {name!r}; known: {', '.join(EDITIONS)}") from None
