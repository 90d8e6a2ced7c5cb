"""Options shared by several commands: ``Annotated`` aliases, the loader flags as one group, option helpers.

A command declares a shared option by its alias (``json: JsonOpt = False``). The loader flags (``--dir``,
``--user-col``, ``--item-col``, ``--rating-col``, ``--time-col``, ``--sep``, ``--duplicates``, ``--feedback``,
``--positive``) are declared once, as the fields of ``LoaderFlags``; a command takes them as one parameter,
and ``option_groups`` spreads that parameter into the flags, in place, for typer::

    @app.command()
    @option_groups
    def info(data: DataArg, loader: LoaderFlags = LoaderFlags(), json: JsonOpt = False) -> None:
        ratings = loader.load(data)
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import typing
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from deepmf.errors import ConfigError

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings

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
FeedbackOpt = Annotated[
    str,
    typer.Option(
        "--feedback",
        help="explicit (star ratings) or implicit (interactions: clicks, plays, or ratings >= --positive; a file "
        "may then have no rating column, and repeated events become counts).",
    ),
]
PositiveOpt = Annotated[
    float | None,
    typer.Option(
        "--positive",
        help="With --feedback implicit: the lowest rating that counts as an interaction (default: every row).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
EpochsOpt = Annotated[int | None, typer.Option("--epochs", help="Maximum epochs.", show_default=False)]
DeviceOpt = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda, cuda:N or auto.", show_default=False)
]
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads",
        help="CPU threads (default: all cores; Bayesian MF and SVD++ use one below 500K training ratings).",
        show_default=False,
    ),
]


OptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "-o",
        "--option",
        help="Model option KEY=VALUE (JSON "
        "values; repeatable). In compare, "
        "MODEL.KEY=VALUE targets one model.",
        show_default=False,
    ),
]
KOpt = Annotated[int, typer.Option("-k", "--k", help="List length of the ranking metrics.")]
ProtocolOpt = Annotated[
    str,
    typer.Option(
        "--protocol",
        help="Implicit feedback: full (rank every item the user has not interacted with) or sampled (NCF's "
        "shortcut: each held-out item among 99 sampled items; far easier, labelled as such).",
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
    feedback: FeedbackOpt = "explicit"
    positive: PositiveOpt = None

    def load(self, data: str) -> Ratings:
        """Load DATA (edition name, MovieLens folder or ratings file); errors propagate as DeepMFError."""
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
            feedback=self.feedback,
            positive=self.positive,
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


def _parse_value(text: str) -> Any:
    """JSON value, else a comma-separated list of numbers ("64,32"), else the text itself."""
    try:
        return json.loads(text)
    except ValueError:
        parts = text.split(",")
        try:
            return [json.loads(p) for p in parts] if len(parts) > 1 else text
        except ValueError:
            return text


def parse_assignments(pairs: list[str] | None, what: str) -> dict[str, Any]:
    """``["factors=64", "layers=[64,32]"]`` -> ``{"factors": 64, "layers": [64, 32]}``."""
    values: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what} {pair!r} is not KEY=VALUE")
        values[key.strip()] = _parse_value(text.strip())
    return values


def given(**values: Any) -> dict[str, Any]:
    """The options the user actually set (None means "not given": the default applies)."""
    return {key: value for key, value in values.items() if value is not None}
