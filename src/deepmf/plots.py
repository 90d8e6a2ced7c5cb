"""Pictures of a trained model: learning curves, actual vs predicted ratings, and a 2-D map of item vectors.

Figures are built with matplotlib's object API (``matplotlib.figure.Figure``), which renders with the Agg
backend without touching pyplot's global state, so plotting works headless and never changes the backend of
the program that imported deepmf. Every PNG is written atomically and carries "deepmf" in its Software text
chunk, so a later run replaces its own pictures and never a user's file of the same name.
matplotlib is an optional dependency (``deepmf[plots]``): importing this module does not need it, drawing does,
and says so in one line.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from deepmf import __version__
from deepmf.data.ratings import RatingScale
from deepmf.errors import ConfigError
from deepmf.extras import require
from deepmf.folders import PNG_SOFTWARE, is_deepmf_png
from deepmf.fsutil import write_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from deepmf.recommender import Recommender

_DPI = 110
# The item map labels at most this many titles, most-rated first, skipping any whose label would overlap one
# already placed (a dozen readable titles say more than forty on top of each other).
_LABELLED_ITEMS = 14
_LABEL_CANDIDATES = 60
# Colours of the item map: the main genres, then every other item. Okabe & Ito's palette, which stays apart
# under the common colour-vision deficiencies; "other" is a light grey drawn underneath.
_MAIN_GENRES = 6
_PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9")
_OTHER_COLOUR = "#c8c8c8"
# Beyond this many rating steps (continuous ratings) the histograms use this many equal-width bins.
_MAX_BINS = 30


def _figure(figsize: tuple[float, float]) -> Figure:
    """A matplotlib Figure with an Agg canvas (text sizes are measurable before saving)."""
    figure = require("matplotlib.figure", "drawing plots").Figure
    canvas = require("matplotlib.backends.backend_agg", "drawing plots").FigureCanvasAgg
    fig = figure(figsize=figsize)
    canvas(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=_DPI, bbox_inches="tight",
                metadata={"Software": f"{PNG_SOFTWARE} {__version__}"})
    return write_file(path, buffer.getvalue(), ours=is_deepmf_png)


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
    fig = _figure((6.4, 4.2))
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
    ax.xaxis.set_major_locator(require("matplotlib.ticker", "drawing plots").MaxNLocator(integer=True))
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
    fig = _figure((6.4, 4.2))
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


def main_genres(genres: np.ndarray, genre_names: Sequence[str], n: int = _MAIN_GENRES
                ) -> tuple[np.ndarray, list[str]]:
    """Each item's colour group on the item map: one of the ``n`` genres most items have, else "other".

    An item with several of them is put in the one fewest items have, the more telling label (an
    Action|Drama film is shown as Action, Drama being the commoner genre).

    Args:
        genres: (n_items, n_genres) multi-hot genre matrix.
        genre_names: its column names.
        n: how many genres get a colour of their own.

    Returns:
        (group of each item: 0..k-1 or -1 for other, the k <= n group names, most common first).
    """
    genres = np.asarray(genres, dtype=bool)
    counts = genres.sum(axis=0)
    main = [g for g in np.argsort(-counts, kind="stable")[:n] if counts[g] > 0]
    group = np.full(len(genres), -1, dtype=np.int64)
    for rank in range(len(main) - 1, -1, -1):  # rarest first, so commoner genres do not overwrite it
        unset = (group < 0) & genres[:, main[rank]]
        group[unset] = rank
    return group, [str(genre_names[g]) for g in main]


def non_overlapping(boxes: Sequence[Sequence[tuple[float, float, float, float]]], limit: int,
                    bounds: tuple[float, float, float, float] | None = None) -> list[tuple[int, int]]:
    """Greedy label placement: candidates in order, each at the first of its positions that overlaps no label
    already placed (and lies within ``bounds``), until ``limit`` labels are placed.

    Args:
        boxes: per candidate, the (x0, y0, x1, y1) box of its label at each position it may take.
        limit: most labels to place.
        bounds: (x0, y0, x1, y1) every placed box must lie in.

    Returns:
        (candidate, position) pairs of the placed labels.
    """
    placed: list[tuple[float, float, float, float]] = []
    chosen: list[tuple[int, int]] = []
    for candidate, options in enumerate(boxes):
        if len(chosen) >= limit:
            break
        for position, box in enumerate(options):
            if bounds is not None and not (bounds[0] <= box[0] and box[2] <= bounds[2]
                                           and bounds[1] <= box[1] and box[3] <= bounds[3]):
                continue
            if all(box[2] <= o[0] or o[2] <= box[0] or box[3] <= o[1] or o[3] <= box[1] for o in placed):
                placed.append(box)
                chosen.append((candidate, position))
                break
    return chosen


# Label positions tried around a point, in points: right-above, left-above, right-below, left-below.
_OFFSETS = ((4, 3, "left", "bottom"), (-4, 3, "right", "bottom"), (4, -3, "left", "top"), (-4, -3, "right", "top"))


def item_map_figure(
    embeddings: np.ndarray,
    genres: np.ndarray | None,
    genre_names: Sequence[str],
    titles: Sequence[str] | None = None,
    counts: np.ndarray | None = None,
    title: str = "Item embeddings (PCA)",
) -> Figure:
    """The item map as a Figure (``plot_item_map`` saves it; tests inspect it): see ``plot_item_map``."""
    if len(embeddings) < 2:
        raise ConfigError("need at least two items to draw an embedding map")
    coords = pca_2d(embeddings)
    fig = _figure((9.0, 6.5))
    ax = fig.subplots()
    if genres is None:
        group, names = np.full(len(coords), -1, dtype=np.int64), []
    else:
        group, names = main_genres(genres, genre_names)
    other = group < 0
    if other.any():
        ax.scatter(coords[other, 0], coords[other, 1], s=7, color=_OTHER_COLOUR, linewidths=0,
                   label=f"other ({int(other.sum())})", zorder=1)
    for rank, name in enumerate(names):
        mask = group == rank
        ax.scatter(coords[mask, 0], coords[mask, 1], s=11, color=_PALETTE[rank], alpha=0.85, linewidths=0,
                   label=f"{name} ({int(mask.sum())})", zorder=2)
    if titles is not None and counts is not None:
        _label_points(fig, ax, coords, titles, np.asarray(counts))
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.set_title(title)
    if names or other.any():
        handles, labels = ax.get_legend_handles_labels()
        if other.any():  # "other" is drawn first (underneath) but listed last
            handles, labels = handles[1:] + handles[:1], labels[1:] + labels[:1]
        ax.legend(handles, labels, title="main genre", fontsize=8, title_fontsize=8, loc="center left",
                  bbox_to_anchor=(1.01, 0.5), markerscale=1.8, frameon=False)
    return fig


def _label_points(fig: Figure, ax: Any, coords: np.ndarray, titles: Sequence[str], counts: np.ndarray) -> None:
    """Write the titles of the most-rated items that fit without overlapping (see ``non_overlapping``)."""
    ax.autoscale_view()
    ax.set_xlim(ax.get_xlim())  # freeze the limits: labels placed now must stay where they were measured
    ax.set_ylim(ax.get_ylim())
    renderer = fig.canvas.get_renderer()
    candidates = np.argsort(-counts, kind="stable")[:_LABEL_CANDIDATES]
    texts, boxes = [], []
    for index in candidates:
        options, boxes_here = [], []
        for dx, dy, ha, va in _OFFSETS:
            text = ax.annotate(_shorten(str(titles[index])), coords[index], xytext=(dx, dy),
                               textcoords="offset points", fontsize=7, ha=ha, va=va, zorder=3,
                               bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "alpha": 0.6,
                                     "linewidth": 0})
            extent = text.get_window_extent(renderer)
            options.append(text)
            boxes_here.append((extent.x0, extent.y0, extent.x1, extent.y1))
        texts.append(options)
        boxes.append(boxes_here)
    frame = ax.get_window_extent(renderer)
    keep = set(non_overlapping(boxes, _LABELLED_ITEMS, (frame.x0, frame.y0, frame.x1, frame.y1)))
    for candidate, options in enumerate(texts):
        for position, text in enumerate(options):
            if (candidate, position) not in keep:
                text.remove()


def plot_item_map(
    embeddings: np.ndarray,
    genres: np.ndarray | None,
    genre_names: Sequence[str],
    path: str | os.PathLike[str],
    titles: Sequence[str] | None = None,
    counts: np.ndarray | None = None,
    title: str = "Item embeddings (PCA)",
) -> Path:
    """Scatter of item vectors projected on two principal components, coloured by main genre.

    Six colours from a colour-blind-safe palette mark the six genres most items have (an item with several is
    shown as the least common of them); every other item is a light grey "other". The titles of the most-rated
    items are written where they do not overlap another label.

    Args:
        embeddings: (n, d) item vectors.
        genres: (n, n_genres) multi-hot genres, or None (every point "other").
        genre_names: names of the genre columns.
        path: the PNG to write.
        titles: item titles; the most-rated items (by ``counts``) are labelled.
        counts: ratings per item, for choosing the labelled items.
        title: figure title.
    """
    return _save(item_map_figure(embeddings, genres, genre_names, titles, counts, title), path)


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
                table.genres[trained],
                table.genre_names,
                out / f"{prefix}item_map.png",
                titles=np.asarray(table.titles)[trained],
                counts=recommender.seen.item_counts()[trained],
                title=f"{name}: item embeddings (PCA), coloured by main genre",
            )
        )
    return written
