"""A small Markdown report of one or more trained models: metrics side by side, configs and pictures.

The report is ``report.md`` plus the PNGs of ``deepmf.plots`` in one folder. Everything comes from the
``Recommender`` objects (training config, history and summary, and the test evaluation stored with them), so
``deepmf train --report``, ``deepmf demo`` and a saved model folder all give the same report. Files are
written one by one, atomically; other files in the folder are left alone, and a file of the same name that
deepmf did not write (``report.md`` without deepmf's first line, a PNG deepmf did not draw) is an error, never
overwritten. Without matplotlib (the optional ``deepmf[plots]``) the report is written without pictures and says
how to get them.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from deepmf import __version__
from deepmf.errors import MissingDependencyError, OutputError
from deepmf.folders import REPORT_HEADER, is_deepmf_report
from deepmf.fsutil import check_file_target, make_folder, write_file
from deepmf.plots import plot_recommender
from deepmf.recommender import Recommender

REPORT_FILE = "report.md"

logger = logging.getLogger(__name__)

# (metric key, column header, format) in the order of the comparison table.
METRIC_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("rmse", "RMSE", ".4f"),
    ("mae", "MAE", ".4f"),
    ("accuracy", "accuracy", ".3f"),
    ("precision", "P@k", ".4f"),
    ("recall", "R@k", ".4f"),
    ("ndcg", "NDCG@k", ".4f"),
    ("map", "MAP@k", ".4f"),
    ("hit_rate", "hit rate", ".3f"),
    ("coverage", "coverage", ".3f"),
    ("n_cold", "cold test ratings", "d"),
)


def format_metric(value: Any, spec: str) -> str:
    """A metric as table text: formatted number, or "–" when missing or not a number."""
    if value is None or isinstance(value, str):
        return "–"
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return "–"


def _label(models: Recommender | Mapping[str, Recommender] | Sequence[Recommender]) -> dict[str, Recommender]:
    if isinstance(models, Recommender):
        return {models.model_name: models}
    if isinstance(models, Mapping):
        return dict(models)
    labelled: dict[str, Recommender] = {}
    for recommender in models:
        label, n = recommender.model_name, 2
        while label in labelled:  # two runs of one model kind keep distinct labels
            label, n = f"{recommender.model_name} ({n})", n + 1
        labelled[label] = recommender
    return labelled


def _file_prefix(label: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in label).strip("_") + "_"


def check_report_target(out_dir: str | os.PathLike[str]) -> None:
    """Raise OutputError unless a report can be written into ``out_dir`` (commands call it before training)."""
    out = Path(out_dir)
    if os.path.lexists(out) and not out.is_dir():
        raise OutputError(f"{out} exists and is not a folder; choose another report folder", filename=str(out))
    check_file_target(out / REPORT_FILE, ours=is_deepmf_report)


def write_report(
    out_dir: str | os.PathLike[str],
    models: Recommender | Mapping[str, Recommender] | Sequence[Recommender],
    *,
    title: str = "deepmf report",
    data_name: str = "",
    split_name: str = "",
    notes: Sequence[str] = (),
) -> Path:
    """Write ``report.md`` and every available plot for each model into ``out_dir``.

    Args:
        out_dir: folder to write into (created if needed).
        models: one Recommender, a sequence (labelled by model name) or a mapping label -> Recommender. Their
            ``evaluation`` (test metrics and predictions) and ``history`` feed the table and plots.
        title: report heading.
        data_name: data set name shown in the header.
        split_name: split shown in the header.
        notes: extra lines shown under the header (e.g. "ML-100K not found: synthetic data used").

    Returns:
        Path of ``report.md``.
    """
    check_report_target(out_dir)  # before drawing anything
    out = make_folder(out_dir)
    path = out / REPORT_FILE
    labelled = _label(models)
    missing_plots = ""
    lines = [REPORT_HEADER, "", f"# {title}", ""]
    facts = [("data", data_name), ("split", split_name), ("deepmf", __version__)]
    lines += [f"- **{key}**: {value}" for key, value in facts if value]
    lines += [f"- {note}" for note in notes]
    k = _first_metric(labelled, "k")
    lines += ["", "## Test metrics", ""]
    threshold = _first_metric(labelled, "relevant_threshold")
    relevant = ("every held-out interaction (implicit feedback)" if threshold is None
                else f"held-out rating ≥ {threshold}")
    if k is not None:
        lines += [
            f"Ranking metrics at k = {k}; relevant = {relevant}; items rated in training are never "
            "recommended; coverage is the share of trained items recommended to anyone.",
            "",
        ]
    header = ["model", *(name for _, name, _ in METRIC_COLUMNS), "train s", "epochs"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for label, recommender in labelled.items():
        metrics = recommender.evaluation.metrics if recommender.evaluation is not None else {}
        cells = [
            label,
            *(format_metric(metrics.get(key), spec) for key, _, spec in METRIC_COLUMNS),
            format_metric(recommender.summary.get("train_seconds"), ".1f"),
            format_metric(recommender.summary.get("epochs_run"), "d"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for label, recommender in labelled.items():
        lines += ["", f"## {label}", ""]
        lines += [f"- **model options**: {_options(recommender.model_options)}"]
        if recommender.train_config is not None:
            unused = set(recommender.summary.get("unused_options") or ())  # the engine does not read them
            options = {k: v for k, v in recommender.train_config.to_dict().items() if k not in unused}
            lines += [f"- **training options**: {_options(options)}"]
        lines.append("")
        summary = {
            key: value for key, value in recommender.summary.items()
            if not isinstance(value, (list, dict)) and value != ""
        }
        if summary:
            lines += [", ".join(f"{key}: {_short(value)}" for key, value in summary.items()), ""]
        prefix = _file_prefix(label)
        try:
            pictures = plot_recommender(recommender, out, prefix=prefix)
        except MissingDependencyError as exc:  # the report is still worth having without its pictures
            if not missing_plots:
                logger.warning("report without pictures: %s", exc)
            missing_plots, pictures = str(exc), []
        for png in pictures:
            lines += [f"![{label}: {png.stem.removeprefix(prefix).replace('_', ' ')}]({png.name})", ""]
    if missing_plots:
        lines += ["", f"(No pictures: {missing_plots}.)"]
    write_file(path, ("\n".join(lines).rstrip() + "\n").encode("utf-8"), ours=is_deepmf_report)
    return path


def _first_metric(labelled: Mapping[str, Recommender], key: str) -> Any:
    return next((r.evaluation.metrics.get(key) for r in labelled.values() if r.evaluation is not None), None)


def _options(values: dict[str, Any]) -> str:
    return ", ".join(f"`{key}={json.dumps(value)}`" for key, value in values.items()) or "defaults"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
