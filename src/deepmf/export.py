"""Files for other systems: a trained model's vectors, and every user's top-N, in raw ids.

**Vectors** (``export_vectors``, ``deepmf export``): one parquet row per user and per item of the model's id maps:

    side    "user" or "item"
    id      the raw id (int64 when both maps hold integers, else text)
    title   the item's title ("" for users and untitled items)
    ratings training ratings of that user or item (0: the model never learned it; its vector is its random start)
    bias    the learned user or item bias, null when the model has none (deep models without biases, AutoRec ...)
    vector  the learned vector, a list of float32 (users and items may differ in length: deep MF's user_dim)

The file's schema metadata holds ``{"deepmf": {"export": 1, "model": ..., "global_bias": ..., "version": ...}}``.

**Recommendations** (``export_recommendations``, ``deepmf recommend --all-users --out FILE``): one row per
(user, rank, item, title, score), Parquet, or CSV when the name ends in ``.csv``. Users are scored in chunks
(``Recommender.recommend_all``) and each chunk goes straight to a temp file beside the target, so memory stays
bounded whatever the number of users; the temp file replaces the target only once complete. The Parquet
file's metadata holds ``{"deepmf": {"recommendations": 1, ...}}``.

Both are written through ``fsutil``, atomically, and replace only a file that is deepmf's by its mark
(``is_deepmf_export``): a Parquet file with the ``deepmf`` metadata key, or a CSV whose first line is exactly
the quoted header this module writes. Any other file is left alone and is an OutputError.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deepmf.errors import ConfigError
from deepmf.fsutil import write_file, writing_file

if TYPE_CHECKING:
    from deepmf.recommender import Recommender

EXPORT_FORMAT = 1
RECOMMENDATIONS_FORMAT = 1
METADATA_KEY = b"deepmf"
RECOMMENDATION_COLUMNS = ("user", "rank", "item", "title", "score")
# What pyarrow's CSV writer puts first (it quotes the names; pandas and spreadsheets do not).
CSV_HEADER = ",".join(f'"{name}"' for name in RECOMMENDATION_COLUMNS).encode() + b"\n"


def is_deepmf_export(path: Path) -> bool:
    """True when ``path`` is a file this module wrote (see the module docstring), so it may be replaced."""
    if path.suffix.lower() == ".csv":
        try:
            with open(path, "rb") as handle:
                return handle.read(len(CSV_HEADER)) == CSV_HEADER
        except OSError:
            return False
    try:
        metadata = pq.read_schema(path).metadata or {}
        mark = json.loads(metadata.get(METADATA_KEY, b"{}"))
        return isinstance(mark, dict) and ("export" in mark or "recommendations" in mark)
    except (OSError, ValueError, pa.ArrowException):
        return False


def vectors_table(rec: Recommender) -> pa.Table:
    """The export's table (see the module docstring).

    Raises:
        ConfigError: the model has no user or no item vectors.
    """
    from deepmf import __version__

    users, items = rec.user_vectors(), rec.item_vectors()
    if users is None or items is None:
        raise ConfigError(f"model {rec.model_name!r} has no user and item vectors to export")
    user_raw, item_raw = rec.user_ids.raw(np.arange(rec.n_users)), rec.item_ids.raw(np.arange(rec.n_items))
    as_int = rec.user_ids.kind == "int" and rec.item_ids.kind == "int"
    ids: list[Any] = [int(v) if as_int else str(v) for v in (*user_raw, *item_raw)]
    titles = [""] * rec.n_users + [rec.title(i) for i in range(rec.n_items)]
    counts = np.concatenate([rec.seen.user_counts(), rec.seen.item_counts()]).astype(np.int64)
    biases = rec.model.bias_terms()
    global_bias = None
    if biases is None:
        bias = pa.nulls(rec.n_users + rec.n_items, pa.float32())
    else:
        global_bias = float(biases[0])
        bias = pa.array(np.concatenate([biases[1].float().cpu().numpy(), biases[2].float().cpu().numpy()]))
    vectors = pa.array([*users, *items], type=pa.list_(pa.float32()))
    meta = {"export": EXPORT_FORMAT, "model": rec.model_name, "global_bias": global_bias, "version": __version__,
            "user_dim": int(users.shape[1]), "item_dim": int(items.shape[1])}
    return pa.table({"side": ["user"] * rec.n_users + ["item"] * rec.n_items,
                     "id": pa.array(ids, type=pa.int64() if as_int else pa.string()), "title": titles,
                     "ratings": counts, "bias": bias, "vector": vectors},
                    metadata={METADATA_KEY: json.dumps(meta).encode()})


def export_vectors(rec: Recommender, path: str | os.PathLike[str]) -> Path:
    """Write ``rec``'s vectors and biases to the parquet file ``path``, atomically.

    Raises:
        ConfigError: the model has no vectors.
        OutputError: ``path`` exists and is not a file this function wrote, or the system refused.
    """
    buffer = io.BytesIO()
    pq.write_table(vectors_table(rec), buffer)
    return write_file(path, buffer.getvalue(), ours=is_deepmf_export)


@dataclass(frozen=True)
class RecommendationsSummary:
    """What ``export_recommendations`` wrote."""

    path: Path
    users: int
    rows: int
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {"out": str(self.path), "users": self.users, "rows": self.rows, "seconds": self.seconds}


def export_recommendations(rec: Recommender, path: str | os.PathLike[str], n: int = 10, min_ratings: int = 1,
                           exclude_seen: bool = True) -> RecommendationsSummary:
    """Write every user's top-n to ``path``: Parquet, or CSV when the name ends in ``.csv`` (module docstring).

    Args:
        rec: the model.
        path: the file to write.
        n: items per user.
        min_ratings: only items with at least this many training ratings (as ``Recommender.recommend``).
        exclude_seen: leave out items each user rated in training.

    Raises:
        ConfigError: n < 1 or min_ratings < 0.
        OutputError: ``path`` exists and is not a file deepmf wrote, or the system refused. Nothing was changed.
    """
    import pyarrow.csv as pacsv

    from deepmf import __version__

    chunks = rec.recommend_all(n, min_ratings, exclude_seen)
    first = next(chunks, None)  # bad arguments are refused before the file is touched
    target = Path(path)
    as_csv = target.suffix.lower() == ".csv"
    start = time.perf_counter()
    mark = {"recommendations": RECOMMENDATIONS_FORMAT, "model": rec.model_name, "n": n, "version": __version__}
    schema = pa.schema(
        [
            ("user", pa.int64() if rec.user_ids.kind == "int" else pa.string()),
            ("rank", pa.int32()),
            ("item", pa.int64() if rec.item_ids.kind == "int" else pa.string()),
            ("title", pa.string()),
            ("score", pa.float32()),
        ],
        metadata=None if as_csv else {METADATA_KEY: json.dumps(mark).encode()},
    )
    users = rows = 0
    with writing_file(target, ours=is_deepmf_export) as temp:
        writer = pacsv.CSVWriter(temp, schema) if as_csv else pq.ParquetWriter(temp, schema)
        with writer:
            if first is None:  # no user with training ratings: an empty file with the header
                writer.write_table(schema.empty_table())
            for frame in itertools.chain([first], chunks) if first is not None else ():
                writer.write_table(pa.Table.from_pandas(frame, schema=schema, preserve_index=False))
                users += frame["user"].nunique()
                rows += len(frame)
    return RecommendationsSummary(target, users, rows, time.perf_counter() - start)
