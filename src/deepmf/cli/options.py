"""Options shared by several commands: ``Annotated`` aliases, flag groups, and the one mapping of flags to options.

A command declares a shared option by its alias (``json: JsonOpt = False``). Groups of flags are declared once,
as the fields of a frozen dataclass, and a command takes each group as one parameter that ``option_groups``
spreads into its flags, in place, for typer:

- ``LoaderFlags``: how DATA is read (``--dir``, ``--user-col``, ``--item-col``, ``--rating-col``, ``--time-col``,
  ``--sep``, ``--duplicates``, ``--scale``, ``--encoding``, and ``--feedback``/``--positive``: explicit ratings
  or implicit interactions);
- ``ModelFlags``: model options (``--factors``, ``--layers``, ``--loss``, ... and ``-o KEY=VALUE`` for any other);
- ``TrainFlags``: training options (``--lr``, ``--epochs``, ``--negatives``, ... and ``-t KEY=VALUE`` for any
  other).

``run_options`` maps the model and training flags of ``train``, ``evaluate``, ``compare`` and ``tune`` to each
model's ``model_options`` and ``train_options``; ``-k`` and ``--protocol`` say how the test part is scored
(``train``, ``evaluate``, ``compare``; ``tune`` never reads it)::

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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from deepmf.errors import ConfigError
from deepmf.experiment import RunConfig

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
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of text; an error "
                                        "is then one JSON object too: {\"error\": ..., \"exit_code\": ...}.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", help="No progress bars.")]


def flag(*names: str, help: str) -> Any:
    """An option whose default means "not given" (so typer shows no default)."""
    return typer.Option(*names, help=help, show_default=False)


# ---- what to train and where to test it (train, evaluate, compare, tune) ------------------------------------
ModelOpt = Annotated[str | None, flag(
    "--model", help="Model: mf, deepmf, neumf, svdpp, bayes, autorec, blend or blend:A,B,...; with --feedback "
    "implicit: bpr, ials, ease, pop, deepmf or neumf (default: the --config file's, else mf; ials for implicit "
    "feedback).")]
SplitOpt = Annotated[str | None, flag(
    "--split", help="Test split: u1..u5, ua, ub, canonical (u1..u5), random:0.2, user:0.2, user:leave3, time:0.2, "
    "usertime:last2, leave-last-out, ncf, kfold:5, files:TRAIN,TEST (default: user:0.2 for implicit feedback, "
    "else u1 for ML-100K, whose canonical split it is, else random:0.2).")]
ConfigOpt = Annotated[Path | None, flag(
    "--config", help="JSON file {model, model_options, train_options} (e.g. from `deepmf tune --out`); flags, "
    "-o and -t override it.")]
ValFractionOpt = Annotated[float | None, flag(
    "--val-fraction", help="Share of each training part carved off for validation (default: 0.05 when it steers "
    "training, i.e. early stopping or a plateau schedule, else 0; tune: 0.1).")]
ReportOpt = Annotated[Path | None, flag(
    "--report", help="Write a Markdown report with plots to this folder (of the first fold where the split has "
    "several).")]
KOpt = Annotated[int, typer.Option("-k", "--k", help="List length of the ranking metrics.")]
ProtocolOpt = Annotated[str, typer.Option(
    "--protocol", help="Implicit feedback: full (rank every item the user has not interacted with) or sampled "
    "(NCF's shortcut: each held-out item among 99 sampled items; far easier, labelled as such).")]

# ---- model options: the fields of ModelFlags ------------------------------------------------------------------
FactorsOpt = Annotated[int | None, flag(
    "--factors", help="Latent factors / embedding size K (mf, deepmf, neumf, svdpp).")]
UserDimOpt = Annotated[int | None, flag(
    "--user-dim", help="User embedding size (deepmf, neumf; default --factors).")]
ItemDimOpt = Annotated[int | None, flag(
    "--item-dim", help="Item embedding size (deepmf, neumf; default --factors).")]
LayersOpt = Annotated[str | None, flag("--layers", help="MLP widths, e.g. 64,64 (deepmf, neumf).")]
BatchnormOpt = Annotated[bool, flag("--batchnorm", help="Batch norm before each ReLU (deepmf, neumf).")]
DropoutOpt = Annotated[float | None, flag(
    "--dropout", help="Dropout after each hidden layer (deepmf, neumf).")]
NoBiasOpt = Annotated[bool, flag("--no-bias", help="No user/item/global biases (mf, deepmf, neumf).")]
SigmoidOpt = Annotated[bool, flag("--sigmoid", help="Squash the output into the rating range (mf).")]
FeaturesOpt = Annotated[str | None, flag(
    "--features", help="Side features, comma-separated: genre, genres, user (deepmf, neumf).")]
HeadOpt = Annotated[str | None, flag("--head", help="regression or classification (deepmf, neumf).")]
LossOpt = Annotated[str | None, flag(
    "--loss", help="rating (explicit ratings) or bce (implicit feedback with sampled negatives, as NCF; the "
    "default with --feedback implicit) (deepmf, neumf).")]
OptionOpt = Annotated[list[str] | None, flag(
    "-o", "--option", help="Model option KEY=VALUE, any the model takes (JSON values; repeatable); "
    "MODEL.KEY=VALUE sets it for one model of compare.")]

# ---- training options: the fields of TrainFlags --------------------------------------------------------------
OptimizerOpt = Annotated[str | None, flag(
    "--optimizer", help="sgd, adam, adamw, rmsprop, adagrad or sparse_adam.")]
LrOpt = Annotated[float | None, flag("--lr", help="Learning rate.")]
WeightDecayOpt = Annotated[float | None, flag("--weight-decay", help="Optimizer weight decay.")]
L2Opt = Annotated[float | None, flag("--l2", help="Per-batch L2 on the embedding rows used.")]
BatchSizeOpt = Annotated[int | None, flag("--batch-size", help="Ratings per step.")]
EpochsOpt = Annotated[int | None, flag("--epochs", help="Maximum epochs.")]
PatienceOpt = Annotated[int | None, flag("--patience", help="Early stopping patience in epochs (0: off).")]
NegativesOpt = Annotated[int | None, flag(
    "--negatives", help="Implicit feedback: negatives sampled per interaction and epoch (bpr: 1, deepmf/neumf "
    "with loss bce: 4).")]
LrScheduleOpt = Annotated[str | None, flag("--lr-schedule", help="none, cosine, step or plateau.")]
SeedOpt = Annotated[int | None, flag(
    "--seed", help="Seed of the split, initialisation, shuffling and dropout (and of tune's sampler); default 0.")]
DeviceOpt = Annotated[str | None, flag(
    "--device", help="cpu, cuda, cuda:N or auto (default: each model where it is expected to train faster).")]
EngineOpt = Annotated[str | None, flag(
    "--engine", help="auto (the model's best where it trains), torch, numba, cuda-sgd (MF on a GPU), svdpp, "
    "gibbs, gibbs-torch (Bayesian MF on a GPU), autorec, blend; implicit feedback: bpr, ials, closed (ease, pop), "
    "sampled (deepmf/neumf with loss bce).")]
ThreadsOpt = Annotated[int | None, flag(
    "--threads", help="CPU threads (default chosen by measurement: one below 1M training ratings for the torch "
    "engine and 500K for Bayesian MF and SVD++; the numba MF engine uses every core).")]
TrainOptionOpt = Annotated[list[str] | None, flag(
    "-t", "--train-option", help="Training option KEY=VALUE, any there is (momentum, sparse, ... as well as "
    "those with a flag; JSON values; repeatable); MODEL.KEY=VALUE sets it for one model of compare.")]


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
    feedback: FeedbackOpt = "explicit"
    positive: PositiveOpt = None

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
            feedback=self.feedback,
            positive=self.positive,
        )


@dataclasses.dataclass(frozen=True)
class ModelFlags:
    """Model options: a flag for the common ones, ``-o KEY=VALUE`` for any; the defaults are "not given"."""

    factors: FactorsOpt = None
    user_dim: UserDimOpt = None
    item_dim: ItemDimOpt = None
    layers: LayersOpt = None
    batchnorm: BatchnormOpt = False
    dropout: DropoutOpt = None
    no_bias: NoBiasOpt = False
    sigmoid: SigmoidOpt = False
    features: FeaturesOpt = None
    head: HeadOpt = None
    loss: LossOpt = None
    option: OptionOpt = None


@dataclasses.dataclass(frozen=True)
class TrainFlags:
    """Training options (``deepmf.training.config.TrainConfig``'s names): a flag for the common ones,
    ``-t KEY=VALUE`` for any; the defaults are "not given" (the model's tuned defaults apply)."""

    optimizer: OptimizerOpt = None
    lr: LrOpt = None
    weight_decay: WeightDecayOpt = None
    l2: L2Opt = None
    batch_size: BatchSizeOpt = None
    epochs: EpochsOpt = None
    patience: PatienceOpt = None
    negatives: NegativesOpt = None
    lr_schedule: LrScheduleOpt = None
    seed: SeedOpt = None
    device: DeviceOpt = None
    engine: EngineOpt = None
    threads: ThreadsOpt = None
    train_option: TrainOptionOpt = None


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


RunOptions = tuple[dict[str, Any], dict[str, Any]]
# Flags named otherwise than the option they set, with the value they set it to.
_NEGATIVE_FLAGS = {"no_bias": ("bias", False)}


def run_options(models: Sequence[str], model_flags: ModelFlags, train_flags: TrainFlags,
                config: RunConfig | None = None) -> dict[str, RunOptions]:
    """Each model's ``(model_options, train_options)``: the ``--config`` file's, then the command line's.

    The command line sets each option once: by its flag, by ``-o``/``-t KEY=VALUE`` (every model), or by
    ``-o``/``-t MODEL.KEY=VALUE`` (that model). A model option is checked against each model's options here,
    before any data is read or any model trained.

    Args:
        models: the models of the command (``--model``, or compare's ``--models``).
        model_flags, train_flags: the command's flag groups.
        config: the ``--config`` file (train and evaluate), whose options the command line overrides.

    Raises:
        ConfigError: an option set twice on the command line, an assignment that is not KEY=VALUE or names a
            model not in ``models``, or a model option a model does not take (naming the model and its options).
    """
    from deepmf.models.registry import model_class

    model_sets = _assigned(models, _flag_values(model_flags, "option"), model_flags.option, "-o")
    train_sets = _assigned(models, _flag_values(train_flags, "train_option"), train_flags.train_option, "-t")
    base = config or RunConfig()
    result = {}
    for name in models:
        allowed = model_class(name).config_class.option_names()
        for key, (_, source) in model_sets[name].items():
            if key not in allowed:
                raise ConfigError(f"model {name!r} does not take {source} (its options: {', '.join(allowed)})"
                                  + ("; set it for the models that take it with -o MODEL.KEY=VALUE"
                                     if len(models) > 1 else ""))
        result[name] = ({**base.model_options, **{k: v for k, (v, _) in model_sets[name].items()}},
                        {**base.train_options, **{k: v for k, (v, _) in train_sets[name].items()}})
    return result


def _flag_values(flags: ModelFlags | TrainFlags, assignments: str) -> dict[str, tuple[Any, str]]:
    """``{option: (value, the flag as typed)}`` of the flags given (None and False mean "not given")."""
    values: dict[str, tuple[Any, str]] = {}
    for field in dataclasses.fields(flags):
        value = getattr(flags, field.name)
        if field.name == assignments or value is None or value is False:
            continue
        typed = "--" + field.name.replace("_", "-")
        key, value = _NEGATIVE_FLAGS.get(field.name, (field.name, value))
        values[key] = (value, typed if isinstance(value, bool) else f"{typed} {value}")
    return values


def _assigned(models: Sequence[str], flags: dict[str, tuple[Any, str]], pairs: list[str] | None,
              option_flag: str) -> dict[str, dict[str, tuple[Any, str]]]:
    """Per model, ``{option: (value, where it was set)}`` from the flags and the KEY=VALUE assignments."""
    per_model: dict[str, dict[str, tuple[Any, str]]] = {name: {} for name in models}

    def put(name: str, key: str, value: Any, source: str) -> None:
        if key in per_model[name]:
            raise ConfigError(f"option {key} is set twice, by {per_model[name][key][1]} and by {source}: "
                              "set it once")
        per_model[name][key] = (value, source)

    for key, (value, source) in flags.items():
        for name in models:
            put(name, key, value, source)
    for pair in pairs or []:
        key, sep, text = pair.partition("=")
        target, dot, key = key.strip().rpartition(".")
        if not sep or not key:
            raise ConfigError(f"{option_flag} {pair!r} is not KEY=VALUE")
        if dot and target not in per_model:
            raise ConfigError(f"{option_flag} {pair!r} names model {target!r}, which is not one of the models "
                              f"trained here ({', '.join(models)})")
        for name in [target] if dot else models:
            put(name, key, _parse_value(text.strip()), f"{option_flag} {pair}")
    return per_model


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
