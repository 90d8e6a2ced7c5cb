"""Options shared by several commands: ``Annotated`` aliases, the loader flags as one group, option helpers.

A command declares a shared option by its alias (``json: JsonOpt = False``). The loader flags (``--dir``,
``--user-col``, ``--item-col``, ``--rating-col``, ``--time-col``, ``--sep``, ``--duplicates``, ``--scale``,
``--encoding``) are declared once, as the fields of ``LoaderFlags``; a command takes them as one parameter, and
``option_groups`` spreads that parameter into those flags, in place, for typer::

    @app.command()
    @option_groups
    def info(data: DataArg, loader: LoaderFlags = LoaderFlags(), json: JsonOpt = False) -> None:
        ratings = loader.load(data)
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.data.scale import ScaleBounds

DataArg = Annotated[
    str,
    typer.Argument(
        help="Edition name (ml-100k, ml-latest-small, ...), a MovieLens folder, or a ratings file (CSV/TSV/parquet).",
        show_default=False,
    ),
]
DirOpt = Annotated[
    Path | None,
    typer.Option(
        "--dir",
        help="Data folder holding the editions (default: $DEEPMF_DATA, else the user cache).",
        show_default=False,
    ),
]
UserColOpt = Annotated[
    str | None,
    typer.Option(
        "--user-col",
        help="User id column of your file (name, or 0-based position without a header).",
        show_default=False,
    ),
]
ItemColOpt = Annotated[str | None, typer.Option("--item-col", help="Item id column of your file.", show_default=False)]
RatingColOpt = Annotated[
    str | None, typer.Option("--rating-col", help="Rating column of your file.", show_default=False)
]
TimeColOpt = Annotated[
    str | None,
    typer.Option("--time-col", help="Timestamp column of your file (unix seconds or dates).", show_default=False),
]
SepOpt = Annotated[
    str | None,
    typer.Option("--sep", help="Field separator of your file (default: sniffed; '\\t' for tab).", show_default=False),
]
DuplicatesOpt = Annotated[
    str,
    typer.Option("--duplicates", help="Duplicate (user, item) ratings: error, last (keep the last) or mean (average)."),
]
ScaleOpt = Annotated[
    str | None,
    typer.Option(
        "--scale",
        help="Rating scale MIN,MAX or MIN,MAX,STEP (e.g. 1,5 or 0.5,5,0.5): a rating outside it is an error "
        "naming its line (default: the edition's, else inferred from the ratings).",
        show_default=False,
    ),
]
EncodingOpt = Annotated[
    str | None,
    typer.Option("--encoding", help="Text encoding of your file (default utf-8; e.g. latin-1).", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="Maximum epochs.", show_default=False)]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda, cuda:N or auto (default: each model where it is "
                                              "expected to train faster).", show_default=False)
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="CPU threads (default chosen by measurement: one below 1M training ratings for the torch engine "
        "and 500K for Bayesian MF and SVD++; the numba MF engine uses every core).",
        show_default=False,
    ),
]


@dataclasses.dataclass(frozen=True)
class LoaderFlags:
    """The flags that say how DATA is read (see ``deepmf.data.load``); the defaults are "not given"."""

    dir: DirOpt = None
    user_col: UserColOpt = None
    item_col: ItemColOpt = None
    rating_col: RatingColOpt = None
    time_col: TimeColOpt = None
    sep: SepOpt = None
    duplicates: DuplicatesOpt = "error"
    scale: ScaleOpt = None
    encoding: EncodingOpt = None

    def load(self, data: str, scale: ScaleBounds | None = None) -> Ratings:
        """Load DATA (edition name, MovieLens folder or ratings file); errors propagate as DeepMFError.

        ``scale`` replaces ``--scale``: test ratings must follow the scale of the model that scores them
        (``ScaleBounds.of(model.scale, "the model's scale")``).
        """
        from deepmf.data import load

        return load(
            data,
            data_dir=self.dir,
            user_col=self.user_col,
            item_col=self.item_col,
            rating_col=self.rating_col,
            time_col=self.time_col,
            sep=self.sep,
            duplicates=self.duplicates,
            scale=self.scale if scale is None else scale,
            encoding=self.encoding,
        )


Command = TypeVar("Command", bound=Callable[..., Any])


def option_groups(command: Command) -> Command:
    """Spread each parameter annotated with an option group (a dataclass such as ``LoaderFlags``) into the
    group's fields, at that parameter's place, so typer sees one option per field; the call gathers them back.

    Typer reads a command's parameters from ``inspect.signature``, which honours ``__signature__``.
    """
    signature = inspect.signature(command, eval_str=True)
    groups: dict[str, tuple[type, list[str]]] = {}
    parameters: list[inspect.Parameter] = []
    for param in signature.parameters.values():
        group = param.annotation
        if not (isinstance(group, type) and dataclasses.is_dataclass(group)):
            parameters.append(param)
            continue
        hints = typing.get_type_hints(group, include_extras=True)
        fields = dataclasses.fields(group)
        groups[param.name] = (group, [f.name for f in fields])
        parameters += [inspect.Parameter(f.name, param.kind, default=f.default, annotation=hints[f.name])
                       for f in fields]

    @functools.wraps(command)
    def gathered(**values: Any) -> Any:
        for name, (group, fields) in groups.items():
            values[name] = group(**{field: values.pop(field) for field in fields})
        return command(**values)

    gathered.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    gathered.__annotations__ = {p.name: p.annotation for p in parameters}
    return gathered  # type: ignore[return-value]


def given(**values: Any) -> dict[str, Any]:
    """The options the user actually set (None means "not given": the default applies)."""
    return {key: value for key, value in values.items() if value is not None}
