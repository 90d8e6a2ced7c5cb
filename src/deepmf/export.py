"""Embeddings out: a trained model's user and item vectors and biases as one parquet file, in raw ids.

One row per user and per item of the model's id maps:

    side    "user" or "item"
    id      the raw id (int64 when both maps hold integers, else text)
    title   the item's title ("" for users and untitled items)
    ratings training ratings of that user or item (0: the model never learned it; its vector is its random start)
    bias    the learned user or item bias, null when the model has none (deep models without biases, AutoRec ...)
    vector  the learned vector, a list of float32 (users and items may differ in length: deep MF's user_dim)

The file's schema metadata holds ``{"deepmf": {"export": 1, "model": ..., "global_bias": ..., "version": ...}}``.
That mark is also how ``export_vectors`` knows a file is its own: it replaces an earlier export atomically and
refuses to overwrite any other file.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deepmf.errors import ConfigError
from deepmf.fsutil import write_file

if TYPE_CHECKING:
    from deepmf.recommender import Recommender

EXPORT_FORMAT = 1
METADATA_KEY = b"deepmf"


def _is_our_export(path: Path) -> bool:
    try:
        metadata = pq.read_schema(path).metadata or {}
        return json.loads(metadata.get(METADATA_KEY, b"{}")).get("export") is not None
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
    return write_file(path, buffer.getvalue(), ours=_is_our_export)
