"""The table of test metrics per fold (evaluate) or per model (compare, demo), sized for an 80-column terminal.

Rating models show RMSE/MAE (and accuracy for the classification head) beside the ranking metrics;
implicit-feedback models only the ranking metrics (precision, recall, NDCG, MAP, hit rate, coverage at k).
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table

METRIC_HEADERS = (
    ("rmse", "RMSE"),
    ("mae", "MAE"),
    ("accuracy", "acc"),
    ("precision", "P@k"),
    ("recall", "R@k"),
    ("ndcg", "NDCG@k"),
    ("map", "MAP@k"),
    ("hit_rate", "hit"),
    ("coverage", "cov"),
)


def metric_columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (key, header) of every metric some row has."""
    return [(key, header) for key, header in METRIC_HEADERS if any(row.get(key) is not None for row in rows)]


def fold_table(
    title: str,
    rows: list[dict[str, Any]],
    first: str,
    k: int,
    mean: dict[str, float] | None = None,
    std: dict[str, float] | None = None,
) -> Table:
    """Metrics per row (fold or model), with mean and std rows when given; fits an 80-column terminal."""
    columns = metric_columns(rows)
    cold = {row.get("cold_test_ratings") for row in rows} - {None}
    implicit = all(row.get("rmse") is None for row in rows)
    handled = ("ranked as misses (items) or not ranked (users)" if implicit
               else "answered by the bias fallback")
    caption = (
        f"{'/'.join(map(str, sorted(cold)))} test {'interactions' if implicit else 'ratings'} of users/items "
        f"unseen in training {handled}"
        if cold and cold != {0}
        else None
    )
    table = Table(
        title=title,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        padding=(0, 1, 0, 0),  # one space plus the box's separator between columns: fits 80 columns
    )
    table.add_column(first, justify="left", no_wrap=True, min_width=max(len(str(r.get(first))) for r in rows))
    for _, header in columns:
        table.add_column(header.replace("@k", f"@{k}"), justify="right")
    table.add_column("ep", justify="right")
    table.add_column("sec", justify="right")
    for row in rows:
        table.add_row(
            str(row.get(first)),
            *(metric_text(key, row.get(key)) for key, _ in columns),
            str(row.get("epochs_run") or "–"),
            metric_text("seconds", row.get("train_seconds")),
        )
    if mean is not None and std is not None and len(rows) > 1:
        table.add_section()
        for label, values in (("mean", mean), ("std", std)):
            table.add_row(
                label,
                *(metric_text(key, values.get(key)) for key, _ in columns),
                "",
                metric_text("seconds", values.get("train_seconds")),
            )
    return table


def metric_text(key: str, value: Any) -> str:
    """A metric as the table shows it: errors to 4 places, shares to 3, seconds to 1, a dash when missing."""
    if value is None:
        return "–"
    if key == "seconds":
        return f"{value:.1f}"
    return f"{value:.4f}" if key in ("rmse", "mae") else f"{value:.3f}"
