"""Shared CLI plumbing: error handling, JSON output, rich console."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import traceback
import warnings
from typing import Any

import numpy as np
import typer
from rich.console import Console

from deepmf.errors import DataWarning, DeepMFError, DistributedError

# Human output goes to stdout via rich; --json output is written raw so it stays one JSON object. Every print is
# literal: user text (titles, ids, file names, messages) never goes through rich markup ("[x]" would vanish) or
# emoji codes (u.data:100: would print as u.data💯); styles are given with ``style=`` or ``rich.text.Text``.
console = Console(highlight=False, markup=False, emoji=False)
err_console = Console(stderr=True, highlight=False, markup=False, emoji=False)

# Exit codes of every command (the README lists them).
OK = 0
INTERNAL_ERROR = 1  # a bug in deepmf: please report it with the traceback
JOB_FAILED = 1  # a data-parallel job lost a process: not the user's mistake; rerun with --resume
USAGE_ERROR = 2  # bad input: flags, options, data, ids, files
INTERRUPTED = 130
EXIT_CODES = {OK: "success",
              INTERNAL_ERROR: "unexpected error (a bug: the traceback is on stderr), or a torchrun job lost a "
                              "process (rerun with --resume)",
              USAGE_ERROR: "bad input: a flag, option, data file, id or model folder (one line says which)",
              INTERRUPTED: "interrupted (Ctrl-C)"}


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


def _wants_json(argv: list[str]) -> bool:
    """Whether the command line asks for JSON output (its errors are then JSON too)."""
    return "--json" in argv[1:]


def _report_error(message: str, code: int, as_json: bool) -> int:
    """Print one error: a JSON object on stdout under --json, else one literal line on stderr."""
    message = _rank_prefix() + " ".join(message.split("\n"))  # one line, whatever a library put in its message
    if as_json:
        print_json({"error": message, "exit_code": code})
    else:
        err_console.print(f"error: {message}", soft_wrap=True, markup=False, style="bold red")
    return code


def _report_interrupt(as_json: bool) -> int:
    """Ctrl-C: one line ("interrupted"; one JSON object under --json) and exit code 130."""
    if as_json:
        print_json({"error": "interrupted", "exit_code": INTERRUPTED})
    else:
        err_console.print("interrupted", markup=False)
    return INTERRUPTED


def _is_usage_error(exc: BaseException) -> bool:
    """A bad flag or argument, as the command-line parser reports it (click's or typer's own ClickException,
    depending on the typer version: recognised by its interface, not its module)."""
    return all(hasattr(exc, name) for name in ("format_message", "exit_code", "show"))


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """deepmf's own warnings as one literal line on stderr; others as Python prints them."""
    if issubclass(category, DataWarning):
        err_console.print(f"warning: {message}", style="yellow", soft_wrap=True)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _empty_value(app: typer.Typer, argv: list[str]) -> str | None:
    """The first option or argument given an empty value (``--report ''``, ``--out=``, ``deepmf info ''``).

    The parser would take an empty path for the current folder (``--report ''`` would write the report there)
    and an empty name for "not given" (``--model ''`` would train the default model), so what was typed would
    not be what runs: such a value is refused. Returns the option (``--report``) or argument (``DATA``).
    """
    commands = getattr(typer.main.get_command(app), "commands", None)
    args = argv[1:]
    name = next((arg for arg in args if not arg.startswith("-")), None)
    if not commands or name not in commands:
        return None
    params = commands[name].params
    valued = {opt for p in params if p.param_type_name == "option" and not getattr(p, "is_flag", False)
              and not getattr(p, "count", False) for opt in p.opts}
    arguments = [p for p in params if p.param_type_name == "argument"]
    tokens, position, options_done = args[args.index(name) + 1:], 0, False
    skip = False
    for i, token in enumerate(tokens):
        if skip:
            skip = False
            continue
        if not options_done and token == "--":
            options_done = True
        elif not options_done and token.startswith("-") and token != "-":
            option, equals, value = token.partition("=")
            if option in valued and ((equals and value == "") or (not equals and tokens[i + 1:i + 2] == [""])):
                return option
            skip = option in valued and not equals
        else:
            if token == "" and position < len(arguments):
                return arguments[position].name.upper()
            position += 1
    return None


def run_app(app: typer.Typer) -> int:
    """Run the typer app and return the exit code (``EXIT_CODES``).

    A DeepMFError (bad data, options, ids, files) and a usage error (bad flags) become one line on stderr and
    exit code 2; under ``--json`` the line is instead one JSON object on stdout, ``{"error": ..., "exit_code":
    ...}``, as is an unexpected error (exit code 1, its traceback on stderr). KeyboardInterrupt exits 130.
    """
    as_json = _wants_json(sys.argv)
    empty = _empty_value(app, sys.argv)
    if empty is not None:
        hint = "give it a value, or leave the option out" if empty.startswith("-") else "give a value"
        return _report_error(f"{empty} is empty: {hint}", USAGE_ERROR, as_json)
    with warnings.catch_warnings():
        warnings.simplefilter("always", DataWarning)
        warnings.showwarning = _show_warning
        try:
            result = app(standalone_mode=False)
        except DeepMFError as exc:
            return _report_error(str(exc), JOB_FAILED if isinstance(exc, DistributedError) else USAGE_ERROR, as_json)
        except OSError as exc:  # a system refusal no library call turned into a DeepMFError: still one line
            reason = exc.strerror or str(exc) or type(exc).__name__
            return _report_error(f"{exc.filename}: {reason}" if exc.filename else reason, USAGE_ERROR, as_json)
        except MemoryError:
            return _report_error("out of memory", USAGE_ERROR, as_json)
        except (KeyboardInterrupt, typer.Abort):
            return _report_interrupt(as_json)
        except Exception as exc:
            if _is_usage_error(exc):
                if not as_json:
                    exc.show()  # type: ignore[attr-defined]  # usage line, hint and the error, as click prints them
                    return int(exc.exit_code)  # type: ignore[attr-defined]
                return _report_error(exc.format_message(), int(exc.exit_code), as_json)  # type: ignore[attr-defined]
            if not as_json:
                raise
            traceback.print_exc()
            return _report_error(f"internal error: {type(exc).__name__}: {exc}", INTERNAL_ERROR, as_json)
        # standalone_mode=False returns typer.Exit's code (e.g. 0 after --help) or the command's return value;
        # typer turns Ctrl-C into Exit(130) without a word.
        if result == INTERRUPTED:
            return _report_interrupt(as_json)
        return result if isinstance(result, int) else 0


def configure_logging(verbose: bool = False) -> None:
    """Show the library's log records (logger ``deepmf``) on stderr: warnings always, progress with -v.

    The library never configures logging itself; the CLI does, once (calling this again only changes the level).
    """
    logger = logging.getLogger("deepmf")
    if not any(isinstance(handler, _ConsoleHandler) for handler in logger.handlers):
        logger.addHandler(_ConsoleHandler())
        logger.propagate = False
    logger.setLevel(logging.INFO if verbose else logging.WARNING)


class _ConsoleHandler(logging.Handler):
    """``warning: message`` lines on the stderr console (looked up at each record, so redirection works)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            err_console.print(f"{record.levelname.lower()}: {record.getMessage()}", markup=False, soft_wrap=True,
                              style="yellow" if record.levelno >= logging.WARNING else None)
        except Exception:
            self.handleError(record)
