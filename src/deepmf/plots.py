"""Pictures of a trained model: learning curves, actual vs predicted ratings, and a 2-D map of item vectors.

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``), which renders with the Agg
backend without touching pyplot's global state, so plotting works headless and never changes the backend of
the program that imported deepmf. Every PNG is written atomically.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.figure import Figure

from deepmf.data.ratings import RatingScale
from deepmf.errors import ConfigError
from deepmf.fsutil import atomic_write_bytes

if TYPE_CHECKING:
    from deepmf.recommender import Recommender

_DPI = 110
# How many of the most-rated items get their title written on the embedding map (more is unreadable).
_LABELLED_ITEMS = 12
# Beyond this many rating steps (continuous ratings) the histograms use this many equal-width bins.
_MAX_BINS = 30


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def plot_learning_curves(
    history: Sequence[dict[str, Any]], path: str | os.PathLike[str], title: str = "Learning curves"
) -> Path:
    """Train and validation RMSE per epoch (implicit feedback: training loss and validation NDCG@10); the best
    validation epoch is marked.

    Args:
        history: per-epoch records with ``epoch``, ``train_rmse`` and optionally ``val_rmse`` (or
            ``train_loss`` and ``val_ndcg``).
        path: the PNG to write.
        title: figure title.

    Raises:
        ConfigError: the history is empty.
    """
    if not history:
        raise ConfigError("no training history to plot")
    epochs = np.array([record["epoch"] for record in history], dtype=float)
    scores = any(record.get("val_ndcg") is not None or record.get("train_loss") is not None for record in history)
    curves = ((("train_loss", "train loss", "o-"), ("val_ndcg", "validation NDCG@10", "s-")) if scores
              else (("train_rmse", "train", "o-"), ("val_rmse", "validation", "s-")))
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    for key, label, style in curves:
        values = np.array(
            [np.nan if record.get(key) is None else record[key] for record in history], dtype=float
        )
        if np.isfinite(values).any():
            ax.plot(epochs, values, style, label=label, markersize=3)
            if key in ("val_rmse", "val_ndcg"):
                best = int(np.nanargmax(values) if key == "val_ndcg" else np.nanargmin(values))
                ax.axvline(epochs[best], color="grey", linestyle=":", linewidth=1)
                ax.annotate(
                    f"best {values[best]:.4f}",
                    (epochs[best], values[best]),
                    textcoords="offset points",
                    xytext=(4, 8),
                    fontsize=8,
                )
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss / NDCG@10" if scores else "RMSE")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return _save(fig, path)


def plot_rating_histograms(
    actual: np.ndarray,
    predicted: np.ndarray,
    scale: RatingScale,
    path: str | os.PathLike[str],
    title: str = "Test ratings: actual vs predicted",
) -> Path:
    """Histograms of actual and predicted ratings on shared bins, one bin per rating step.

    Args:
        actual: held-out ratings.
        predicted: predictions for them.
        scale: rating scale (bins are centred on its values).
        path: the PNG to write.
        title: figure title.
    """
    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    if len(actual) == 0:
        raise ConfigError("no test ratings to plot")
    half = scale.step / 2
    fine_scale = scale.n_classes > _MAX_BINS  # continuous ratings: equal-width bins instead of one per step
    if fine_scale:
        edges = np.linspace(scale.minimum, scale.maximum, _MAX_BINS + 1)
    else:
        edges = np.append(scale.class_values() - half, scale.maximum + half)
    fig = Figure(figsize=(6.4, 4.2))
    ax = fig.subplots()
    ax.hist(
        [actual, predicted],
        bins=edges,
        label=["actual", "predicted"],
        color=["#4c72b0", "#dd8452"],
        rwidth=0.85,
    )
    if not fine_scale:
        ax.set_xticks(scale.class_values())
    ax.set_xlabel("rating" if fine_scale else "rating (predictions binned to the nearest step)")
    ax.set_ylabel("number of test ratings")
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """Project row vectors onto their first two principal components (n, 2); zero-pads when d < 2."""
    centred = np.asarray(vectors, dtype=np.float64)
    centred = centred - centred.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    coords = centred @ components[:2].T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    return coords


def plot_item_map(
    embeddings: np.ndarray,
    first_genre: np.ndarray,
    genre_names: Sequence[str],
    path: str | os.PathLike[str],
    titles: Sequence[str] | None = None,
    counts: np.ndarray | None = None,
    title: str = "Item embeddings (PCA)",
) -> Path:
    """Scatter of item vectors projected on two principal components, coloured by first genre.

    Args:
        embeddings: (n, d) item vectors.
        first_genre: index of each item's first genre, -1 for none.
        genre_names: names of the genre indices.
        path: the PNG to write.
        titles: item titles; the most-rated items (by ``counts``) are labelled.
        counts: ratings per item, for choosing the labelled items.
        title: figure title.
    """
    if len(embeddings) < 2:
        raise ConfigError("need at least two items to draw an embedding map")
    coords = pca_2d(embeddings)
    fig = Figure(figsize=(9.0, 6.5))
    ax = fig.subplots()
    colours = _genre_colours(len(genre_names))
    for genre in np.unique(first_genre):
        mask = first_genre == genre
        label = genre_names[genre] if 0 <= genre < len(genre_names) else "no genre"
        colour = colours[genre] if genre >= 0 else (0.6, 0.6, 0.6, 1.0)
        ax.scatter(
            coords[mask, 0],
            coords[mask, 1],
            s=9,
            color=colour,
            label=f"{label} ({mask.sum()})",
            alpha=0.75,
            linewidths=0,
        )
    if titles is not None and counts is not None:
        for index in np.argsort(-np.asarray(counts), kind="stable")[:_LABELLED_ITEMS]:
            ax.annotate(
                _shorten(str(titles[index])),
                coords[index],
                fontsize=7,
                xytext=(3, 3),
                textcoords="offset points",
            )
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(title)
    ax.legend(
        title="first genre",
        fontsize=7,
        title_fontsize=8,
        loc="center left",
        bbox_to_anchor=(1.01, 0.5),
        markerscale=1.8,
        frameon=False,
    )
    return _save(fig, path)


def _genre_colours(n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps

    cmap = colormaps["tab20"]
    return [cmap(i % 20) for i in range(max(n, 1))]


def _shorten(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def plot_recommender(
    recommender: Recommender, out_dir: str | os.PathLike[str], prefix: str = ""
) -> list[Path]:
    """Write every picture the model folder has data for; return the PNG paths.

    - ``{prefix}learning_curves.png`` when the training history has per-epoch numbers;
    - ``{prefix}ratings_histogram.png`` when a test evaluation of ratings is stored with the model (not for
      implicit feedback, whose scores are no ratings);
    - ``{prefix}item_map.png`` when the model has item embeddings and the items have genres.
    """
    out = Path(out_dir)
    name = recommender.model_name
    written: list[Path] = []
    if any(value is not None for record in recommender.history
           for key, value in record.items() if key in ("train_rmse", "val_rmse", "train_loss", "val_ndcg")):
        per_epoch = "loss and validation NDCG" if recommender.scores_only else "RMSE"
        written.append(
            plot_learning_curves(
                recommender.history, out / f"{prefix}learning_curves.png", title=f"{name}: {per_epoch} per epoch"
            )
        )
    if recommender.evaluation is not None and "rmse" in recommender.evaluation.metrics:
        evaluation = recommender.evaluation
        written.append(
            plot_rating_histograms(
                evaluation.actual,
                evaluation.predicted,
                recommender.scale,
                out / f"{prefix}ratings_histogram.png",
                title=f"{name}: test ratings, actual vs predicted (RMSE {evaluation.metrics['rmse']:.4f})",
            )
        )
    table = recommender.item_table
    vectors = recommender.item_vectors()
    if vectors is not None and table is not None and table.genres is not None:
        trained = recommender.seen.item_counts() > 0  # untrained items keep their random initial vectors
        written.append(
            plot_item_map(
                vectors[trained],
                table.first_genre[trained],
                table.genre_names,
                out / f"{prefix}item_map.png",
                titles=np.asarray(table.titles)[trained],
                counts=recommender.seen.item_counts()[trained],
                title=f"{name}: item embeddings (PCA), coloured by first genre",
            )
        )
    return written
