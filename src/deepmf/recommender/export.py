"""Top-n for every user, streamed to a Parquet or CSV file in chunks (the nightly batch job).

Users are scored in chunks (one matrix product per chunk for MF-like models), so memory stays bounded by the
chunk whatever the number of users; each chunk's rows go straight to the file, which is written under a
temporary name and renamed into place only when complete.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from deepmf.errors import ConfigError
from deepmf.fsutil import atomic_file
from deepmf.recommender.ranking import Ranking

# Users per chunk of the export: large enough that per-chunk overhead vanishes, small enough that the scores
# of a chunk (users x items float32) stay well under a gigabyte on a 27K-item catalogue.
EXPORT_CELLS = 1 << 25


@dataclass(frozen=True)
class ExportSummary:
    """What ``write_recommendations`` wrote."""

    path: Path
    users: int
    rows: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {"out": str(self.path), "users": self.users, "rows": self.rows, "seconds": self.seconds}


class Export(Ranking):
    """recommend_all (chunks of a DataFrame) and write_recommendations (a Parquet or CSV file)."""

    def recommend_all(self, n: int = 10, min_ratings: int = 0, exclude_seen: bool = True) -> Iterator[pd.DataFrame]:
        """Top-n for every user with training ratings, one DataFrame per chunk of users.

        Columns user, rank (1-based), item, title, score (predicted rating); users in index order.
        ``min_ratings`` as in ``recommend``.

        Raises:
            ConfigError: n < 1 or min_ratings < 0.
        """
        self._check_n(n)
        self._candidates(min_ratings)  # refuse a bad value before any work
        users = np.flatnonzero(self._trained_users)
        chunk = max(self._chunk_users(), EXPORT_CELLS // max(1, self.n_items) if self._matmul_scoring() else 1)
        for start in range(0, len(users), chunk):
            block = users[start : start + chunk]
            items, scores = next(self._top_k(block, n, exclude_seen, min_ratings, chunk=len(block)))
            rows, ranks = np.nonzero(items >= 0)
            picked = items[rows, ranks]
            yield pd.DataFrame(
                {
                    "user": self.user_ids.raw(block[rows]),
                    "rank": (ranks + 1).astype(np.int32),
                    "item": self.item_ids.raw(picked),
                    "title": self._titles(picked).astype(str),
                    "score": scores[rows, ranks],
                }
            )

    def write_recommendations(
        self,
        path: str | os.PathLike[str],
        n: int = 10,
        min_ratings: int = 0,
        exclude_seen: bool = True,
        overwrite: bool = False,
    ) -> ExportSummary:
        """Write every user's top-n to ``path``: Parquet, or CSV when the name ends in ``.csv``.

        One row per (user, rank, item, title, score), written chunk by chunk to a temporary file that replaces
        ``path`` only once complete.

        Raises:
            ConfigError: ``path`` exists and ``overwrite`` is False (deepmf never replaces a file it was not
                asked to), or is a folder; n < 1 or min_ratings < 0.
        """
        import pyarrow.csv as pacsv
        import pyarrow.parquet as pq

        target = Path(path)
        if target.is_dir():
            raise ConfigError(f"{target} is a folder; give a file name ending in .parquet or .csv")
        if target.exists() and not overwrite:
            raise ConfigError(f"{target} already exists; pass --force (overwrite=True) to replace it")
        as_csv = target.suffix.lower() == ".csv"
        start = time.perf_counter()
        users = rows = 0
        schema = pa.schema(
            [
                ("user", pa.int64() if self.user_ids.kind == "int" else pa.string()),
                ("rank", pa.int32()),
                ("item", pa.int64() if self.item_ids.kind == "int" else pa.string()),
                ("title", pa.string()),
                ("score", pa.float32()),
            ]
        )
        with atomic_file(target) as tmp:
            writer = pacsv.CSVWriter(tmp, schema) if as_csv else pq.ParquetWriter(tmp, schema)
            with writer:
                for frame in self.recommend_all(n, min_ratings, exclude_seen):
                    writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
                    users += frame["user"].nunique()
                    rows += len(frame)
        return ExportSummary(target, users, rows, time.perf_counter() - start)
