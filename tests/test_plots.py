"""Plots and the Markdown report: PCA by hand, files written, the right pictures for what a model holds."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from deepmf.data.ratings import RatingScale
from deepmf.errors import ConfigError
from deepmf.folders import REPORT_HEADER
from deepmf.models.registry import create_model
from deepmf.plots import (
    item_map_figure,
    main_genres,
    non_overlapping,
    pca_2d,
    plot_item_map,
    plot_learning_curves,
    plot_rating_histograms,
    plot_recommender,
)
from deepmf.recommender import Evaluation, Recommender, SeenRatings
from deepmf.report import write_report
from deepmf.testing.conformance import conformance_data

PNG = b"\x89PNG\r\n\x1a\n"
HISTORY = [{"epoch": 1, "train_rmse": 1.1, "val_rmse": 1.2}, {"epoch": 2, "train_rmse": 0.9, "val_rmse": 1.0},
           {"epoch": 3, "train_rmse": 0.8, "val_rmse": None}]


def _recommender(name: str = "mf", with_history: bool = True, genres: bool = True) -> Recommender:
    data = conformance_data()
    if not genres:
        data = replace(data, item_table=replace(data.item_table, genres=None, genre_names=()))
    model = create_model(name, data, factors=4)
    evaluation = Evaluation({"rmse": 1.01, "mae": 0.8, "k": 10, "relevant_threshold": 4.0, "precision": 0.1},
                            data.ratings[:50], np.clip(data.ratings[:50] + 0.3, 1, 5))
    return Recommender(model, name, data.user_ids, data.item_ids, data.scale, data.item_table,
                       SeenRatings.from_ratings(data), history=HISTORY if with_history else None,
                       summary={"train_seconds": 1.5, "epochs_run": 3}, evaluation=evaluation)


def test_pca_2d_recovers_a_plane() -> None:
    """Points on a 2-D plane inside 5-D space keep their pairwise distances after projection."""
    rng = np.random.default_rng(0)
    plane = rng.normal(size=(40, 2)) * [3.0, 1.0]
    basis, _ = np.linalg.qr(rng.normal(size=(5, 2)))
    coords = pca_2d(plane @ basis.T + 7.0)
    distances = np.linalg.norm(plane[:, None] - plane[None], axis=-1)
    np.testing.assert_allclose(np.linalg.norm(coords[:, None] - coords[None], axis=-1), distances, atol=1e-9)
    assert coords[:, 0].var() > coords[:, 1].var()  # first component carries the most variance
    assert pca_2d(np.arange(5.0)[:, None]).shape == (5, 2)  # 1-D vectors are padded


def test_each_plot_writes_a_png(tmp_path: Path) -> None:
    scale = RatingScale(1, 5, 1)
    paths = [
        plot_learning_curves(HISTORY, tmp_path / "a.png"),
        plot_rating_histograms(np.array([1, 2, 5.0]), np.array([1.4, 2.6, 4.4]), scale, tmp_path / "b.png"),
        plot_rating_histograms(np.linspace(-3, 8, 50), np.linspace(-2, 7, 50), RatingScale(-3, 8, 0.01),
                               tmp_path / "c.png"),  # continuous ratings: equal-width bins
        plot_item_map(np.random.default_rng(1).normal(size=(30, 4)), np.eye(4, 3, dtype=bool)[np.arange(30) % 4],
                      ["A", "B", "C"], tmp_path / "d.png", titles=[f"t{i}" for i in range(30)],
                      counts=np.arange(30)),
    ]
    for path in paths:
        assert path.read_bytes()[:8] == PNG
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files


def test_plots_refuse_empty_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no training history"):
        plot_learning_curves([], tmp_path / "x.png")
    with pytest.raises(ConfigError, match="no test ratings"):
        plot_rating_histograms(np.array([]), np.array([]), RatingScale(1, 5, 1), tmp_path / "x.png")
    with pytest.raises(ConfigError, match="two items"):
        plot_item_map(np.zeros((1, 3)), np.ones((1, 1), dtype=bool), ["A"], tmp_path / "x.png")


def test_plot_recommender_draws_what_the_model_holds(tmp_path: Path) -> None:
    full = plot_recommender(_recommender(), tmp_path / "full", prefix="m_")
    assert [p.name for p in full] == ["m_learning_curves.png", "m_ratings_histogram.png", "m_item_map.png"]
    bare = _recommender(with_history=False, genres=False)
    bare.evaluation = None
    assert plot_recommender(bare, tmp_path / "bare") == []


def test_write_report_tables_both_models_and_links_existing_pictures(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    path = write_report(tmp_path, [_recommender(), _recommender()], title="T", data_name="conformance",
                        split_name="random:0.2", notes=["a note"])
    text = path.read_text()
    assert text.startswith(f"{REPORT_HEADER}\n\n# T\n")
    assert "- a note" in text and "**split**: random:0.2" in text
    assert "| mf | 1.0100 | 0.8000 | – | 0.1000 |" in text and "| mf (2) | 1.0100 |" in text
    assert "## mf (2)" in text
    links = [line[line.index("](") + 2:-1] for line in text.splitlines() if line.startswith("![")]
    assert len(links) == 6 and all((tmp_path / link).read_bytes()[:8] == PNG for link in links)
    assert (tmp_path / "notes.txt").read_text() == "mine"  # other files are left alone
    write_report(tmp_path, [_recommender()], title="again")  # its own report and pictures are replaced
    assert "# again" in path.read_text()


def test_main_genres_are_the_commonest_and_an_item_takes_its_rarest_of_them() -> None:
    names = ["Action", "Comedy", "Drama", "Western"]
    genres = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 1, 0], [0, 0, 1, 0]], bool)
    group, main = main_genres(genres, names, n=2)
    assert main == ["Drama", "Action"]  # 5 and 2 items; Comedy and Western (1 each) are "other"
    # Action|Drama items show as Action (the rarer main genre), Comedy|Drama as Drama, Western alone as other.
    assert group.tolist() == [1, 0, 0, -1, 1, 0]


def test_non_overlapping_places_labels_greedily_without_overlap() -> None:
    boxes = [[(0, 0, 10, 2)], [(5, 1, 15, 3), (5, -3, 15, -1)], [(20, 0, 30, 2)], [(1, 0, 4, 1)],
             [(95, 0, 105, 2)]]
    assert non_overlapping(boxes, limit=10, bounds=(-10, -10, 100, 100)) == [(0, 0), (1, 1), (2, 0)]
    assert non_overlapping(boxes, limit=1) == [(0, 0)]


def test_item_map_has_few_distinct_colours_and_no_overlapping_titles() -> None:
    rng = np.random.default_rng(0)
    genres = rng.random((400, 19)) < np.linspace(0.02, 0.4, 19)
    fig = item_map_figure(rng.normal(size=(400, 8)), genres, [f"g{i}" for i in range(19)],
                          titles=[f"A rather long film title {i} (1990)" for i in range(400)],
                          counts=rng.integers(1, 500, 400))
    ax = fig.axes[0]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert len(legend) == 7 and legend[-1].startswith("other")  # six main genres, then "other"
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.texts]
    assert 3 <= len(boxes) <= 14
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_learning_curve_epoch_ticks_are_whole_numbers(tmp_path: Path, monkeypatch) -> None:
    from deepmf import plots

    history = [{"epoch": e, "train_rmse": 1 / e, "val_rmse": 1.1 / e} for e in range(1, 21)]
    captured = {}
    monkeypatch.setattr(plots, "_save", lambda fig, path: captured.update(fig=fig))
    plot_learning_curves(history, tmp_path / "curve.png")
    ticks = [t for t in captured["fig"].axes[0].get_xticks() if 1 <= t <= 20]
    assert ticks and all(float(t).is_integer() for t in ticks)
