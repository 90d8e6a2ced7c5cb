"""The deepmf command line: a thin typer app. Commands parse, call the Python API, print; no logic of their own.

Each command group lives in its own module and registers itself on ``app``; errors of type DeepMFError become
one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from deepmf.cli import common

app = typer.Typer(
    name="deepmf",
    help="Matrix factorization and deep matrix factorization recommenders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root() -> None:
    """deepmf: train, evaluate and serve (deep) matrix factorization recommenders."""


@app.command()
def version() -> None:
    """Print the deepmf version."""
    from deepmf import __version__

    common.console.print(__version__)


def _register() -> None:
    # Imported for their side effect of adding commands to ``app``, in the order `deepmf --help` lists them.
    for module in ("data_cmds", "accuracy_cmds", "model_cmds", "recommend_cmds", "serve_cmds"):
        importlib.import_module(f"deepmf.cli.{module}")


def main() -> None:
    """Console-script entry point."""
    _register()
    sys.exit(common.run_app(app))
