"""Shared CLI plumbing: error handling, JSON output, rich console."""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

import numpy as np
import typer
from rich.console import Console

from deepmf.errors import DeepMFError, DistributedError

# Human output goes to stderr-free stdout via rich; --json output is written raw so it stays one JSON object.
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

USAGE_ERROR = 2
JOB_FAILED = 1  # a data-parallel job lost a process: not the user's mistake


def under_torchrun() -> bool:
    """Whether torchrun started this process in a job of several (read without importing torch)."""
    return os.environ.get("WORLD_SIZE", "").strip() not in ("", "1")


def _rank_prefix() -> str:
    """``rank R: `` in a torchrun job, where every process reports its own errors; empty otherwise."""
    if not under_torchrun():
        return ""
    from deepmf.training.distributed import dist_env

    try:
        env = dist_env()
    except DeepMFError:
        return ""
    return f"rank {env.rank}: " if env.world_size > 1 else ""


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


def fail(message: str) -> None:
    """Print one error line and exit with code 2."""
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(USAGE_ERROR)


def _error_line(message: str, code: int = USAGE_ERROR) -> int:
    message = " ".join(message.split("\n"))  # one line, whatever a library put in its message
    err_console.print(f"error: {_rank_prefix()}{message}", soft_wrap=True, markup=False, style="bold red")
    return code


def run_app(app: typer.Typer) -> int:
    """Run the typer app; a DeepMFError (or a stray OSError/MemoryError) becomes one line on stderr and exit 2.

    Usage errors (bad flags) already exit with code 2 inside typer; KeyboardInterrupt exits 130. A
    DistributedError (a torchrun job lost a process) exits 1.
    """
    try:
        app()
    except DeepMFError as exc:
        return _error_line(str(exc), JOB_FAILED if isinstance(exc, DistributedError) else USAGE_ERROR)
    except OSError as exc:  # a system refusal no library call turned into a DeepMFError: still one line
        reason = exc.strerror or str(exc) or type(exc).__name__
        return _error_line(f"{exc.filename}: {reason}" if exc.filename else reason)
    except MemoryError:
        return _error_line("out of memory")
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    return 0
