"""The deepmf command line: a thin typer app. Commands parse, call the Python API, print; no logic of their own.

Each command group lives in its own module and registers itself on ``app``; errors of type DeepMFError become
one line on stderr (one JSON object on stdout under ``--json``) and exit code 2 (``cli/common.py``).
"""

from __future__ import annotations

import importlib
import sys
from typing import Annotated

import typer

from deepmf.cli import common
from deepmf.cli.options import JsonOpt
from deepmf.errors import ConfigError

app = typer.Typer(
    name="deepmf",
    help="Matrix factorization and deep matrix factorization recommenders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from deepmf import __version__

        common.console.print(f"deepmf {__version__}", markup=False)
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Also log progress (training runs, engines, "
                                          "trials) on stderr.")] = False,
) -> None:
    """deepmf: train, evaluate and serve (deep) matrix factorization recommenders.

    Exit codes: 0 success; 1 unexpected error (a bug) or a lost torchrun process; 2 bad input (flags, options,
    data, ids, files); 130 interrupted. With --json, an error is one JSON object on stdout:
    {"error": ..., "exit_code": ...}.
    """
    common.configure_logging(verbose)
    if not common.under_torchrun() or ctx.invoked_subcommand == "train":
        return
    from deepmf.training.distributed import dist_env

    world_size = dist_env().world_size
    if world_size > 1:
        # Every process would repeat the whole command; only `train` splits its work across processes.
        raise ConfigError(f"`deepmf {ctx.invoked_subcommand}` runs in one process; of the deepmf commands only "
                          f"`train` runs under torchrun (WORLD_SIZE={world_size})")


@app.command()
def version(json: JsonOpt = False) -> None:
    """Print the deepmf version (with --json: deepmf, Python, torch, numba and numpy versions)."""
    import platform

    import numpy
    import torch

    from deepmf import __version__

    if json:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as installed

        try:
            numba_version = installed("numba")
        except PackageNotFoundError:
            numba_version = None
        common.print_json({"deepmf": __version__, "python": platform.python_version(), "torch": torch.__version__,
                           "numba": numba_version, "numpy": numpy.__version__,
                           "cuda": torch.cuda.is_available()})
        return
    common.console.print(f"deepmf {__version__}", markup=False)


def _register() -> None:
    # Imported for their side effect of adding commands to ``app``, in the order `deepmf --help` lists them.
    for module in ("data_cmds", "accuracy_cmds", "model_cmds", "recommend_cmds", "experiment_cmds", "serve_cmds",
                   "demo_cmds", "export_cmds"):
        importlib.import_module(f"deepmf.cli.{module}")


def main() -> None:
    """Console-script entry point."""
    _register()
    sys.exit(common.run_app(app))
