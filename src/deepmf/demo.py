"""The demo, deepmf's first command: MF and deep MF on ML-100K side by side, recommendations, a report.

Data: ML-100K from the data folder if present, else downloaded, else (offline) generated MovieLens-shaped
ratings (1-5 stars, skewed activity and popularity, made-up titles and genres), with a note saying so. Both
models train on the canonical u1 split (a random 80/20 split of generated data) with settings chosen to finish
in well under a minute on a 2-core CPU; each model's top 10 for one user and its 10 items most similar to one
film are shown side by side. The report and both saved models go to the output folder, so
``deepmf recommend OUT/models/mf USER`` works right after.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from deepmf.data.ratings import Ratings
from deepmf.errors import DownloadError, UnknownIdError
from deepmf.experiment import ExperimentResult, run_experiment, train_config_for
from deepmf.folders import check_model_target
from deepmf.fsutil import make_folder
from deepmf.recommender import Recommender
from deepmf.report import check_report_target, write_report

EDITION = "ml-100k"
DEFAULT_OUT = "deepmf-report"
FAMOUS_TITLE = "Star Wars (1977)"
DEMO_USER = 1
# (model, model options, training overrides). Deep MF gets one hidden layer and large batches: on ML-100K u1
# that reaches the same test RMSE as the deeper default (about 0.947) in a fraction of the time. Threads are
# left to deepmf.device (one torch thread on data this size).
DEMO_MODELS: tuple[tuple[str, dict[str, Any], dict[str, Any]], ...] = (
    ("mf", {}, {}),
    (
        "deepmf",
        {"factors": 32, "layers": (64,)},
        {"batch_size": 8192, "lr": 0.006, "epochs": 10, "patience": 3},
    ),
)
# Generated stand-in for ML-100K when it can be neither found nor downloaded: the same sizes, stars, skew, made-up
# titles and genres (deepmf.data.synthetic.movielens_like).
GENERATED = {"n_users": 943, "n_items": 1682, "n_ratings": 100_000, "seed": 0}


@dataclass
class DemoResult:
    """Everything the demo computed and wrote.

    Attributes:
        data_name: the data set used.
        split: split name.
        notes: what the reader must know (e.g. the generated-data fallback).
        results: one ExperimentResult per model.
        user: the user whose top-10 is shown.
        top: that user's top-10 (item, title, score) by model name.
        item: the item whose neighbours are shown; ``item_title`` its title.
        similar: its 10 most similar items (item, title, score) by model name.
        report: path of report.md; ``models``: saved model folders by model name.
        seconds: wall time of the whole demo.
    """

    data_name: str
    split: str
    notes: list[str]
    results: list[ExperimentResult]
    user: Any
    top: dict[str, pd.DataFrame]
    item: Any
    item_title: str
    similar: dict[str, pd.DataFrame]
    report: Path
    models: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.data_name,
            "split": self.split,
            "notes": self.notes,
            "models": [
                {
                    "model": r.model_name,
                    **{k: r.metrics.get(k) for k in ("rmse", "mae", "precision", "recall", "ndcg")},
                    "k": r.metrics.get("k"),
                    "train_seconds": r.recommender.summary.get("train_seconds"),
                    "epochs_run": r.recommender.summary.get("epochs_run"),
                    "threads": r.recommender.summary.get("threads"),
                    "saved": str(self.models[r.model_name]),
                }
                for r in self.results
            ],
            "user": self.user,
            "recommendations": {name: frame.to_dict("records") for name, frame in self.top.items()},
            "item": self.item,
            "title": self.item_title,
            "similar": {name: frame.to_dict("records") for name, frame in self.similar.items()},
            "report": str(self.report),
            "seconds": self.seconds,
        }


def demo_data(
    data_dir: str | os.PathLike[str] | None = None, say: Callable[[str], None] = lambda _: None
) -> tuple[Ratings, str, list[str]]:
    """ML-100K (found or downloaded) with split "u1", else generated MovieLens-shaped data with split "random:0.2".

    Returns:
        (ratings, split spec, notes for the reader).
    """
    from deepmf.data import load
    from deepmf.data.download import download
    from deepmf.data.loading import data_dir as resolve_data_dir
    from deepmf.data.loading import is_present

    if not is_present(EDITION, data_dir):
        say(f"{EDITION} not found in {resolve_data_dir(data_dir)}: downloading it")
        try:
            download(EDITION, data_dir, timeout=15.0)
        except DownloadError as exc:
            from deepmf.data.synthetic import movielens_like

            note = (
                f"{EDITION} is not available ({exc}); using GENERATED MovieLens-shaped ratings instead "
                f"({GENERATED['n_users']:,} users, {GENERATED['n_items']:,} items, {GENERATED['n_ratings']:,} "
                f"ratings of 1-5 stars, made-up titles and genres, seed {GENERATED['seed']}): the films are not "
                "real, the lists only show what the models do"
            )
            say(note)
            return movielens_like(**GENERATED), "random:0.2", [note]
    return load(EDITION, data_dir=data_dir), "u1", []


def _pick_user(rec: Recommender) -> Any:
    return DEMO_USER if DEMO_USER in rec.user_ids else rec.user_ids.raw(0)


def _pick_item(rec: Recommender) -> Any:
    try:
        return rec.find_item(FAMOUS_TITLE)
    except UnknownIdError:
        return rec.item_ids.raw(int(rec.seen.item_counts().argmax()))  # the most rated item


def run_demo(
    out: str | os.PathLike[str] = DEFAULT_OUT,
    data_dir: str | os.PathLike[str] | None = None,
    *,
    say: Callable[[str], None] = lambda _: None,
    progress: bool = False,
) -> DemoResult:
    """Run the demo end to end and write ``out/report.md``, its plots and ``out/models/<name>/``.

    Args:
        out: output folder.
        data_dir: data folder (``--dir``); None uses ``$DEEPMF_DATA`` or the user cache.
        say: receives one-line progress messages.
        progress: show the trainer's progress bars.
    """
    from deepmf.data.splits import parse_split

    start = time.perf_counter()
    out_dir = Path(out)
    # A folder deepmf may not write (a user's report.md, read-only, disk full) is refused before training.
    check_report_target(out_dir)
    for name, _, _ in DEMO_MODELS:
        check_model_target(out_dir / "models" / name, overwrite=True)
    make_folder(out_dir / "models")
    data, spec, notes = demo_data(data_dir, say)
    split = parse_split(spec, data, seed=0)[0]
    say(
        f"data: {data.name}, split {split.name}: {len(split.train):,} training / "
        f"{len(split.test):,} test ratings"
    )
    results = []
    for name, options, overrides in DEMO_MODELS:
        say(f"training {name} ...")
        result = run_experiment(
            data, split, name, options, train_config_for(name, overrides), progress=progress
        )
        summary = result.recommender.summary
        say(
            f"{name}: test RMSE {result.metrics['rmse']:.4f} after {summary['epochs_run']} epochs "
            f"({summary['train_seconds']:.1f} s)"
        )
        results.append(result)
    models = {r.model_name: r.recommender.save(out_dir / "models" / r.model_name) for r in results}
    main = results[0].recommender
    user, item = _pick_user(main), _pick_item(main)
    report = write_report(
        out_dir,
        [r.recommender for r in results],
        title="deepmf demo: MF vs deep MF",
        data_name=data.name,
        split_name=split.name,
        notes=notes,
    )
    return DemoResult(
        data.name,
        split.name,
        notes,
        results,
        user,
        {r.model_name: r.recommender.recommend(user, n=10) for r in results},
        item,
        main.title(main.item_ids.index(item)),
        {r.model_name: r.recommender.similar_items(item, n=10) for r in results},
        report,
        models,
        time.perf_counter() - start,
    )
