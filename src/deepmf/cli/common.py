"""Shared CLI plumbing: error handling, JSON output, rich console."""

from __future__ import annotations

import json
import math
import sys
import warnings
from typing import Any

import numpy as np
import typer
from rich.console import Console

from deepmf.errors import DataWarning, DeepMFError

# Human output goes to stdout via rich; --json output is written raw so it stays one JSON object. Every print is
# literal: user text (titles, ids, file names, messages) never goes through rich markup ("[x]" would vanish) or
# emoji codes (u.data:100: would print as u.data💯); styles are given with ``style=`` or ``rich.text.Text``.
console = Console(highlight=False, markup=False, emoji=False)
err_console = Console(stderr=True, highlight=False, markup=False, emoji=False)

USAGE_ERROR = 2


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def print_json(obj: dict[str, Any]) -> None:
    """Write one JSON object on stdout (NaN/inf become null, numpy scalars become numbers)."""
    sys.stdout.write(json.dumps(_jsonable(obj)) + "\n")
    sys.stdout.flush()


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """deepmf's own warnings as one literal line on stderr; others as Python prints them."""
    if issubclass(category, DataWarning):
        err_console.print(f"warning: {message}", style="yellow", soft_wrap=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def run_app(app: typer.Typer) -> int:
    """Run the typer app; a DeepMFError becomes one line on stderr and exit code 2, a DataWarning one line.

    Usage errors (bad flags) already exit with code 2 inside typer; KeyboardInterrupt exits 130.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("always", DataWarning)
        warnings.showwarning = _show_warning
        try:
            app()
        except DeepMFError as exc:
            err_console.print(f"error: {exc}", soft_wrap=True, style="bold red")
            return USAGE_ERROR
        except KeyboardInterrupt:
            err_console.print("interrupted")
            return 130
    return 0
