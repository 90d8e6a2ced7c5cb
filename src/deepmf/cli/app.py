"""The deepmf command line: a thin typer app. Commands parse, call the Python API, print; no logic of their own.

Each command group lives in its own module and registers itself on ``app``; errors of type DeepMFError become
one line on stderr and exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import typer

from deepmf.cli import common
from deepmf.errors import ConfigError

app = typer.Typer(
    name="deepmf",
    help="Matrix factorization and deep matrix factorization recommenders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def root(ctx: typer.Context) -> None:
    """deepmf: train, evaluate and serve (deep) matrix factorization recommenders."""
    if not common.under_torchrun() or ctx.invoked_subcommand == "train":
        return
    from deepmf.training.distributed import dist_env

    world_size = dist_env().world_size
    if world_size > 1:
        # Every process would repeat the whole command; only `train` splits its work across processes.
        raise ConfigError(f"`deepmf {ctx.invoked_subcommand}` runs in one process; of the deepmf commands only "
                          f"`train` runs under torchrun (WORLD_SIZE={world_size})")


@app.command()
def version() -> None:
    """Print the deepmf version."""
    from deepmf import __version__

    common.console.print(__version__)


def _register() -> None:
    # Imported for their side effect of adding commands to ``app``, in the order `deepmf --help` lists them.
    for module in ("data_cmds", "accuracy_cmds", "model_cmds", "recommend_cmds"):
        importlib.import_module(f"deepmf.cli.{module}")


def main() -> None:
    """Console-script entry point."""
    _register()
    sys.exit(common.run_app(app))
