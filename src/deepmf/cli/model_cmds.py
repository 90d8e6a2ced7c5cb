"""Model commands: ``train`` (split → train → test → save) and ``synthetic`` (tutorial 000's first test).

They parse flags, call ``deepmf.experiment.run_experiment`` / ``train_model`` and print; no logic of their
own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from deepmf.cli.app import app
from deepmf.cli.common import console, print_json
from deepmf.cli.options import (
    DataArg,
    DeviceOpt,
    EpochsOpt,
    JsonOpt,
    KOpt,
    LoaderFlags,
    OptionOpt,
    ProtocolOpt,
    ThreadsOpt,
    given,
    option_groups,
    parse_assignments,
)
from deepmf.data.ratings import Ratings
from deepmf.data.splits import Split, parse_split
from deepmf.errors import ConfigError
from deepmf.training.trainer import EpochRecord

CHECKPOINT_SUBDIR = "checkpoint"


def _option(*names: str, help: str) -> Any:
    return typer.Option(*names, help=help, show_default=False)


# ---- train ------------------------------------------------------------------------------------------------
@app.command()
@option_groups
def train(
    data: DataArg,
    model: Annotated[str | None, _option(
        "--model", help="Model: mf, deepmf, neumf, svdpp, bayes, autorec, blend or blend:A,B,... (default mf); "
        "with --feedback implicit: bpr, ials, ease, pop, deepmf or neumf (default ials)."
    )] = None,
    split: Annotated[str | None, _option("--split", help="Test split: u1..u5, ua, ub, random:0.2, user:0.2, "
                                                         "time:0.2, leave-last-out, ncf ... (default random:0.2; "
                                                         "user:0.2 for implicit feedback).")] = None,
    test: Annotated[Path | None, _option(
        "--test", help="A file of test ratings; DATA is then all training data.")] = None,
    factors: Annotated[int | None, _option("--factors", help="Latent factors / embedding size K.")] = None,
    user_dim: Annotated[int | None, _option("--user-dim", help="User embedding size (deep models).")] = None,
    item_dim: Annotated[int | None, _option("--item-dim", help="Item embedding size (deep models).")] = None,
    layers: Annotated[str | None, _option("--layers", help="MLP widths, e.g. 64,64 (deep models).")] = None,
    batchnorm: Annotated[bool, _option("--batchnorm", help="Batch norm before each ReLU.")] = False,
    dropout: Annotated[float | None, _option("--dropout", help="Dropout after each hidden layer.")] = None,
    no_bias: Annotated[bool, _option("--no-bias", help="No user/item/global biases.")] = False,
    sigmoid: Annotated[bool, _option("--sigmoid", help="MF: squash output into the rating range.")] = False,
    features: Annotated[str | None, _option(
        "--features", help="Side features, comma-separated: genre, genres, user.")] = None,
    head: Annotated[str | None, _option("--head", help="regression or classification.")] = None,
    loss: Annotated[str | None, _option(
        "--loss", help="deepmf/neumf: rating (explicit ratings) or bce (implicit feedback with sampled "
        "negatives, as NCF; the default with --feedback implicit).")] = None,
    option: OptionOpt = None,
    optimizer: Annotated[str | None, _option(
        "--optimizer", help="sgd, adam, adamw, rmsprop, adagrad, sparse_adam.")] = None,
    lr: Annotated[float | None, _option("--lr", help="Learning rate.")] = None,
    weight_decay: Annotated[float | None, _option("--weight-decay", help="Optimizer weight decay.")] = None,
    l2: Annotated[float | None, _option("--l2", help="Per-batch L2 on the embedding rows used.")] = None,
    batch_size: Annotated[int | None, _option("--batch-size", help="Ratings per step.")] = None,
    negatives: Annotated[int | None, _option(
        "--negatives", help="Implicit feedback: negatives sampled per interaction and epoch (bpr: 1, bce: 4).")
    ] = None,
    epochs: EpochsOpt = None,
    patience: Annotated[int | None, _option(
        "--patience", help="Early stopping patience in epochs (0: off).")] = None,
    lr_schedule: Annotated[str | None, _option("--lr-schedule",
                                               help="none, cosine, step or plateau.")] = None,
    seed: Annotated[int | None, _option("--seed", help="Seed of split, init, shuffling, dropout.")] = None,
    device: DeviceOpt = None,
    engine: Annotated[str | None, _option("--engine", help="auto, torch or numba.")] = None,
    threads: ThreadsOpt = None,
    val_fraction: Annotated[float | None, typer.Option(
        "--val-fraction", help="Share of the training part carved off for validation (default: 0.05 with "
        "early stopping, else 0).", show_default=False)] = None,
    config: Annotated[Path | None, _option(
        "--config", help="JSON file {model, model_options, train_options}; flags override it.")] = None,
    k: KOpt = 10,
    protocol: ProtocolOpt = "full",
    out: Annotated[Path | None, _option(
        "--out", help="Save the trained model here (checkpoints in OUT/checkpoint).")] = None,
    resume: Annotated[bool, _option("--resume", help="Continue the run checkpointed in OUT.")] = False,
    report: Annotated[Path | None, _option("--report",
                                           help="Write a Markdown report with plots here.")] = None,
    quiet: Annotated[bool, _option("--quiet", help="No progress bar.")] = False,
    json: JsonOpt = False,
    loader: LoaderFlags = LoaderFlags(),
) -> None:
    """Train a model on DATA minus the split's test part (or all of DATA with --test FILE), then test it."""
    from deepmf.experiment import RunConfig, run_experiment, train_config_for

    if resume and out is None:
        raise ConfigError("--resume needs --out DIR (the run's checkpoint is in DIR/checkpoint)")
    if split is not None and test is not None:
        raise ConfigError("give either --split or --test, not both")
    run_config = RunConfig.read(config) if config is not None else RunConfig()
    model_name = model or run_config.model or ("ials" if loader.feedback == "implicit" else "mf")
    model_options = {**run_config.model_options, **parse_assignments(option, "model option"), **given(
        factors=factors, user_dim=user_dim, item_dim=item_dim, layers=layers, dropout=dropout, head=head,
        features=features, batchnorm=batchnorm or None, sigmoid=sigmoid or None, loss=loss,
        bias=False if no_bias else None)}
    train_options = {**run_config.train_options, **given(
        optimizer=optimizer, lr=lr, weight_decay=weight_decay, l2=l2, batch_size=batch_size, epochs=epochs,
        patience=patience, lr_schedule=lr_schedule, seed=seed, device=device, engine=engine, threads=threads,
        negatives=negatives)}
    train_config = train_config_for(model_name, train_options, loader.feedback)

    ratings = loader.load(data)
    if test is not None:
        chosen = _test_file_split(ratings, loader.load(str(test)), test)
    else:
        default = "user:0.2" if ratings.feedback == "implicit" else "random:0.2"
        splits = parse_split(split or default, ratings, seed=train_config.seed)
        if len(splits) != 1:
            raise ConfigError(f"train needs one split, {split!r} gives {len(splits)}: "
                              "use `deepmf evaluate` for several")
        chosen = splits[0]

    checkpoint_dir = out / CHECKPOINT_SUBDIR if out is not None else None
    result = run_experiment(ratings, chosen, model_name, model_options, train_config,
                            valid_fraction=val_fraction, k=k, protocol=protocol, baseline=True,
                            progress=not (quiet or json), checkpoint_dir=checkpoint_dir, resume=resume)
    if out is not None:
        with _keep_checkpoint(out):
            result.recommender.save(out)
    if report is not None:
        from deepmf.report import write_report

        write_report(report, {model_name: result.recommender}, data_name=ratings.name,
                     split_name=chosen.name)
    summary = result.to_dict()
    if json:
        print_json(summary)
        return
    _print_history([EpochRecord(**r) for r in summary["history"]], result.recommender.scores_only)
    _print_summary(summary, out, report)


def _test_file_split(ratings: Ratings, test: Ratings, path: Path) -> Split:
    """All of ``ratings`` for training, ``test`` (own id maps, matched by raw id) for testing."""
    users = ratings.user_ids.indices(test.user_ids.raw(test.users), missing="none")
    items = ratings.item_ids.indices(test.item_ids.raw(test.items), missing="none")
    return Split(ratings, test, f"test:{path.name}",
                 cold_users=len(np.unique(test.users[users < 0])),
                 cold_items=len(np.unique(test.items[items < 0])),
                 cold_test_ratings=int(np.count_nonzero((users < 0) | (items < 0))))


@contextlib.contextmanager
def _keep_checkpoint(out: Path) -> Iterator[None]:
    """Saving replaces the model folder whole; park OUT/checkpoint beside it meanwhile so it survives."""
    checkpoint = out / CHECKPOINT_SUBDIR
    parked = out.parent / f".{out.name}.{CHECKPOINT_SUBDIR}"
    if checkpoint.is_dir():
        os.replace(checkpoint, parked)
    try:
        yield
    finally:
        if parked.is_dir():
            out.mkdir(parents=True, exist_ok=True)
            os.replace(parked, checkpoint)


def _fmt(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _print_history(history: list[EpochRecord], scores: bool = False) -> None:
    """The per-epoch table: RMSEs for rating models, training loss and validation NDCG for ``scores``."""
    columns = (("train loss", "train_loss"), ("val NDCG@10", "val_ndcg")) if scores else (
        ("train RMSE", "train_rmse"), ("val RMSE", "val_rmse"))
    table = Table(title="training")
    for column in ("epoch", *(header for header, _ in columns), "seconds", "ratings/s"):
        table.add_column(column, justify="right")
    for r in history:
        table.add_row(str(r.epoch), *(_fmt(getattr(r, key)) for _, key in columns), _fmt(r.seconds, ".2f"),
                      f"{r.ratings_per_second:,.0f}")
    console.print(table)


def _print_summary(summary: dict[str, Any], out: Path | None, report: Path | None) -> None:
    table = Table(title=f"{summary['model']} on split {summary['split']}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    test = summary["test"]
    implicit = "rmse" not in test and "k" in test
    rows = [("interactions" if implicit else "ratings",
             f"{summary['n_train']:,} train, {summary['n_valid']:,} validation, "
             f"{summary['n_test']:,} test ({summary['cold_test_ratings']:,} cold)")]
    if implicit:
        rows += _ranking_rows(test, summary.get("baseline"))
    else:
        rows += [("test RMSE", _fmt(test.get("rmse"))), ("test MAE", _fmt(test.get("mae")))]
    if test.get("scored_at_rating_time"):
        rows.append(("scored", "at each test rating's time (the model uses the day of a rating)"))
    if "accuracy" in test:
        rows.append(("test accuracy", _fmt(test["accuracy"])))
    for key in ("precision", "ndcg"):
        if key in test and not implicit:
            rows.append((f"{key}@{test.get('k')}", _fmt(test[key])))
    rows += [("epochs", f"{summary['epochs_run']} (best {summary['best_epoch']}"
                        f"{', stopped early' if summary['stopped_early'] else ''})"),
             ("training", f"{summary['train_seconds']:.2f} s, {summary['ratings_per_second']:,.0f} "
                          f"{'interactions' if implicit else 'ratings'}/s, engine {summary['engine']}")]
    if out is not None:
        rows.append(("saved", str(out)))
    if report is not None:
        rows.append(("report", str(report / "report.md")))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


def _ranking_rows(test: dict[str, Any], baseline: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Summary rows of an implicit-feedback model's test ranking, the popularity baseline's beside each."""
    pop = (baseline or {}).get("test", {})
    k = test.get("k")
    label = "sampled (99 negatives per held-out item, NCF)" if test.get("protocol") == "sampled" else (
        "full ranking of every unseen item")
    rows = [("protocol", label)]
    for key, name in (("ndcg", f"NDCG@{k}"), ("recall", f"recall@{k}"), ("map", f"MAP@{k}"),
                      ("hit_rate", f"hit rate@{k}"), ("coverage", "coverage")):
        if key in test:
            rows.append((f"test {name}", _fmt(test[key]) + (f"   (pop {_fmt(pop[key])})" if key in pop else "")))
    return rows


# ---- synthetic --------------------------------------------------------------------------------------------
# Tutorial 000: 250 x 250 matrix, 35,000 sampled cells, the first 25,000 train and the last 10,000 evaluate;
# rank-25 factors; batch 1000 on noise and 100 on low-rank data; MXNet's defaults: SGD lr 0.01 without
# momentum, Adam lr 0.001, weights uniform(-0.01, 0.01) (std ~0.006); 5 epochs.
SYNTHETIC_TRAIN = 25_000
SYNTHETIC_LR = {"sgd": 0.01, "adam": 0.001}
SYNTHETIC_MODELS: dict[str, dict[str, Any]] = {
    "mf": {"factors": 25, "bias": False, "init_std": 0.006},
    "deepmf": {"factors": 25, "layers": (64,), "bias": False, "dropout": 0.0, "init_std": 0.006},
}


@app.command()
def synthetic(
    kind: Annotated[str, typer.Option("--kind", help="noise (nothing to learn) or lowrank.")] = "lowrank",
    model: Annotated[str, typer.Option("--model", help="mf or deepmf.")] = "mf",
    optimizer: Annotated[str, typer.Option("--optimizer", help="sgd or adam.")] = "adam",
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs (the tutorial ran 5).")] = 5,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the data and the training.")] = 0,
    threads: ThreadsOpt = None,
    quiet: Annotated[bool, _option("--quiet", help="No progress bar.")] = False,
    json: JsonOpt = False,
) -> None:
    """Tutorial 000's first experiment: noise teaches nothing; low-rank data is learned by Adam, not SGD."""
    from deepmf.data.synthetic import synthetic_ratings
    from deepmf.training.config import TrainConfig
    from deepmf.training.fit import train_model

    if model not in SYNTHETIC_MODELS:
        raise ConfigError(f"unknown model {model!r} for synthetic: choose mf or deepmf")
    if optimizer not in SYNTHETIC_LR:
        raise ConfigError(f"unknown optimizer {optimizer!r} for synthetic: choose sgd or adam")
    data = synthetic_ratings(kind, seed=seed)  # type: ignore[arg-type]  # validated there
    train_part = data.subset(np.arange(SYNTHETIC_TRAIN))
    valid = data.subset(np.arange(SYNTHETIC_TRAIN, len(data)))
    config = TrainConfig(optimizer=optimizer, lr=SYNTHETIC_LR[optimizer], momentum=0.0, epochs=epochs,
                         batch_size=1000 if kind == "noise" else 100, seed=seed, engine="torch",
                         threads=threads)
    trained = train_model(model, data, train_part, valid, SYNTHETIC_MODELS[model], config,
                          progress=not (quiet or json))
    history = trained.result.history
    std = float(np.std(valid.ratings))
    final = history[-1].val_rmse
    # Predicting the mean scores MSE = variance; "learned" means the validation MSE is clearly (5 %) below it.
    learned = final is not None and final**2 < 0.95 * std**2
    summary = {"kind": kind, "model": model, "optimizer": optimizer, "lr": config.lr,
               "batch_size": config.batch_size, "n_train": len(train_part), "n_valid": len(valid),
               "valid_std": std, "history": [vars(r) for r in history], "final_val_rmse": final,
               "learned": learned}
    if json:
        print_json(summary)
        return
    _print_history(history)
    verdict = "learned the structure" if learned else "learned (almost) nothing"
    console.print(f"{kind} data, {model} with {optimizer} (lr {config.lr}): validation RMSE {_fmt(final)} "
                  f"vs the data's standard deviation {std:.4f}: {verdict}")
