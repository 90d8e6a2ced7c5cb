"""Model commands: ``train`` (split → train → test → save) and ``synthetic`` (tutorial 000's first test).

They parse flags, call ``deepmf.experiment.run_experiment`` / ``train_model`` and print; no logic of their
own.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.table import Table

from deepmf.cli.app import app
from deepmf.cli.common import console, print_json
from deepmf.cli.options import (
    ConfigOpt,
    DataArg,
    JsonOpt,
    KOpt,
    LoaderFlags,
    ModelFlags,
    ModelOpt,
    ProtocolOpt,
    QuietOpt,
    ReportOpt,
    SplitOpt,
    ThreadsOpt,
    TrainFlags,
    ValFractionOpt,
    flag,
    option_groups,
    run_options,
)
from deepmf.data.describe import scale_record, scale_text
from deepmf.data.ratings import Ratings, RatingScale
from deepmf.data.scale import ScaleBounds
from deepmf.data.splits import Split, default_split, parse_split
from deepmf.errors import ConfigError
from deepmf.folders import CHECKPOINT_DIR, check_run_folder
from deepmf.training.distributed import DEFAULT_TIMEOUT, dist_env, process_group
from deepmf.training.trainer import EpochRecord


# ---- train ------------------------------------------------------------------------------------------------
@app.command()
@option_groups
def train(
    data: DataArg,
    model: ModelOpt = None,
    split: SplitOpt = None,
    test: Annotated[Path | None, flag(
        "--test", help="A file of test ratings; DATA is then all training data.")] = None,
    model_flags: ModelFlags = ModelFlags(),
    train_flags: TrainFlags = TrainFlags(),
    val_fraction: ValFractionOpt = None,
    config: ConfigOpt = None,
    k: KOpt = 10,
    protocol: ProtocolOpt = "full",
    out: Annotated[Path | None, flag(
        "--out", help="Save the trained model here (checkpoints in OUT/checkpoint).")] = None,
    resume: Annotated[bool, flag("--resume", help="Continue the run checkpointed in OUT.")] = False,
    force: Annotated[bool, flag(
        "--force", help="Replace the deepmf model already in OUT (never anything else).")] = False,
    report: ReportOpt = None,
    # Help is rich markup: "\\[" keeps "[tensorboard]" from being read as a style tag.
    tensorboard: Annotated[Path | None, flag(
        "--tensorboard", help="Also log each epoch's RMSE (implicit feedback: loss and NDCG) and speed for "
        "TensorBoard in this folder "
        "(needs pip install 'deepmf\\[tensorboard]').")] = None,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
    dist_timeout: Annotated[float, typer.Option(
        "--dist-timeout", help="Under torchrun: seconds a process waits for the others before the job stops "
        "(longer than writing one checkpoint).")] = DEFAULT_TIMEOUT,
    loader: LoaderFlags = LoaderFlags(),
) -> None:
    """Train a model on DATA minus the split's test part (or all of DATA with --test FILE), then test it.

    Under torchrun (`torchrun --nproc-per-node N -m deepmf train ...`) the N processes train one model
    data-parallel; process 0 prints, checkpoints, tests and saves it.
    """
    from deepmf.experiment import RunConfig, default_model, run_experiment, train_config_for
    from deepmf.recommender.evaluate import check_protocol

    if resume and out is None:
        raise ConfigError("--resume needs --out DIR (the run's checkpoint is in DIR/checkpoint)")
    # Before hours of training, not after; in a torchrun job only process 0 writes, so only it checks and
    # recovers the folder (the others would race it).
    if out is not None and dist_env().rank == 0:
        check_run_folder(out, force=force, resume=resume)
    if report is not None:
        from deepmf.report import check_report_target

        check_report_target(report)
    if split is not None and test is not None:
        raise ConfigError("give either --split or --test, not both")
    run_config = RunConfig.read(config) if config is not None else RunConfig()
    model_name = model or run_config.model or default_model(loader.feedback)
    model_options, train_options = run_options([model_name], model_flags, train_flags, run_config)[model_name]
    train_config = train_config_for(model_name, train_options, loader.feedback)
    check_protocol(protocol, loader.feedback == "implicit")

    ratings = loader.load(data)
    if test is not None:
        held_out = loader.load(str(test), scale=_test_scale(ratings))
        chosen = _test_file_split(ratings, held_out, test)
    else:
        spec = split or default_split(ratings)
        splits = parse_split(spec, ratings, seed=train_config.seed)
        if len(splits) != 1:
            raise ConfigError(f"train needs one split, {spec!r} gives {len(splits)}: "
                              "use `deepmf evaluate` for several")
        chosen = splits[0]
        run_config.warn_if_tuned_elsewhere(ratings.name, spec, train_config.seed)

    checkpoint_dir = out / CHECKPOINT_DIR if out is not None else None
    with contextlib.ExitStack() as stack:
        env = stack.enter_context(process_group(train_config.device, dist_timeout))
        on_epoch = None
        if tensorboard is not None and env.is_main:
            from deepmf.training.tensorboard import TensorBoardLog

            on_epoch = stack.enter_context(TensorBoardLog(tensorboard, comment=model_name))
        result = run_experiment(ratings, chosen, model_name, model_options, train_config,
                                valid_fraction=val_fraction, k=k, protocol=protocol, baseline=True,
                                progress=not (quiet or json),
                                checkpoint_dir=checkpoint_dir, resume=resume, on_epoch=on_epoch)
    if not env.is_main:
        return
    nothing_to_do = resume and _already_saved(out, result.recommender.summary)  # type: ignore[arg-type]
    if out is not None and not nothing_to_do:
        result.recommender.save(out, overwrite=True, keep_checkpoint=True)
    if report is not None:
        from deepmf.report import write_report

        write_report(report, {model_name: result.recommender}, data_name=ratings.name,
                     split_name=chosen.name)
    summary = {**result.to_dict(), "scale": scale_record(ratings), "nothing_to_do": nothing_to_do}
    if json:
        print_json(summary)
        return
    _print_history([EpochRecord(**r) for r in summary["history"]], result.recommender.scores_only)
    _print_summary(summary, out, report)
    if nothing_to_do:
        console.print(f"nothing to do: the run in {out} had finished all {summary['epochs_run']} epochs and "
                      "its model was saved", markup=False, soft_wrap=True)


def _already_saved(out: Path, summary: dict[str, Any]) -> bool:
    """True when resuming trained nothing more and OUT's model is this run's (its run id)."""
    from deepmf.io import saved_run_id

    return summary.get("epochs_run") == summary.get("resumed_from") and saved_run_id(out) == summary["run_id"]


def _test_scale(ratings: Ratings) -> ScaleBounds | None:
    """The scale --test ratings are held to: the training data's (a model never scores a 7 against 1..5 stars);
    for implicit feedback the scale its ``--positive`` threshold was compared with. None where no scale applies:
    implicit data from an event log, or with no threshold (every row is an interaction, so the test file may
    be an event log too)."""
    scale = ratings.scale
    if ratings.feedback == "implicit":
        if (ratings.meta.get("scale_source") == "events" or "source_scale" not in ratings.meta
                or ratings.meta.get("positive") is None):
            return None
        scale = RatingScale.from_dict(ratings.meta["source_scale"])
    return ScaleBounds.of(scale, "the training data's scale", step=False)


def _test_file_split(ratings: Ratings, test: Ratings, path: Path) -> Split:
    """All of ``ratings`` for training, ``test`` (own id maps, matched by raw id) for testing."""
    users = ratings.user_ids.indices(test.user_ids.raw(test.users), missing="none")
    items = ratings.item_ids.indices(test.item_ids.raw(test.items), missing="none")
    return Split(ratings, test, f"test:{path.name}",
                 cold_users=len(np.unique(test.users[users < 0])),
                 cold_items=len(np.unique(test.items[items < 0])),
                 cold_test_ratings=int(np.count_nonzero((users < 0) | (items < 0))))


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
             f"{summary['n_test']:,} test ({summary['cold_test_ratings']:,} cold)"),
            ("rating scale", scale_text(summary["scale"]))]
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
                          f"{'interactions' if implicit else 'ratings'}/s, engine {summary['engine']}"
                          + (f" on {summary['device']}" if summary.get("device") else "")
                          + f", {summary['threads']} thread(s)"
                          + (f", {summary['world_size']} processes" if summary["world_size"] > 1 else ""))]
    if summary.get("engine_note"):
        rows.append(("engine", f"{summary['engine']}: {summary['engine_note']}"))
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
    quiet: QuietOpt = False,
    json: JsonOpt = False,
) -> None:
    """Tutorial 000's first experiment: noise teaches nothing; low-rank data is learned by Adam, not SGD."""
    from deepmf.data.synthetic import LEARNED_SHARE, noise_floor, share_learned, synthetic_ratings
    from deepmf.training.config import TrainConfig
    from deepmf.training.fit import train_model

    if model not in SYNTHETIC_MODELS:
        raise ConfigError(f"unknown model {model!r} for synthetic: choose mf or deepmf")
    if optimizer not in SYNTHETIC_LR:
        raise ConfigError(f"unknown optimizer {optimizer!r} for synthetic: choose sgd or adam")
    data = synthetic_ratings(kind, seed=seed)  # type: ignore[arg-type]  # validated there
    train_part = data.subset(np.arange(SYNTHETIC_TRAIN))
    valid = data.subset(np.arange(SYNTHETIC_TRAIN, len(data)))
    momentum = {"momentum": 0.0} if optimizer == "sgd" else {}  # MXNet's plain SGD; Adam has no momentum term
    config = TrainConfig(optimizer=optimizer, lr=SYNTHETIC_LR[optimizer], epochs=epochs,
                         batch_size=1000 if kind == "noise" else 100, seed=seed, engine="torch",
                         threads=threads, **momentum)
    trained = train_model(model, data, train_part, valid, SYNTHETIC_MODELS[model], config,
                          progress=not (quiet or json))
    history = trained.result.history
    std = float(np.std(valid.ratings))
    final = history[-1].val_rmse
    floor = min(noise_floor(data), std)
    share = None if final is None else share_learned(final, std, floor)
    learned = share is not None and share >= LEARNED_SHARE
    criterion = (f"learned = validation RMSE at least {LEARNED_SHARE:.0%} of the way from predicting the mean "
                 f"({std:.4f}, the data's standard deviation) to the noise floor ({floor:.4f}), i.e. at most "
                 f"{std - LEARNED_SHARE * (std - floor):.4f}")
    summary = {"kind": kind, "model": model, "optimizer": optimizer, "lr": config.lr,
               "batch_size": config.batch_size, "n_train": len(train_part), "n_valid": len(valid),
               "valid_std": std, "noise_floor": floor, "history": [vars(r) for r in history],
               "final_val_rmse": final, "share_learned": share, "learned": learned, "criterion": criterion,
               "threads": trained.result.threads}
    if json:
        print_json(summary)
        return
    _print_history(history)
    if share is None:
        verdict = "there is no structure to learn (every value is noise), and no model can beat the mean"
    else:
        verdict = (f"{share:.0%} of the way to the noise floor: "
                   + ("learned the structure" if learned else f"not learned in {len(history)} epochs"))
    console.print(f"{kind} data, {model} with {optimizer} (lr {config.lr}): validation RMSE {_fmt(final)}, "
                  f"against {std:.4f} for predicting the mean and {floor:.4f} for the generating matrix "
                  f"(the noise floor); {verdict}.", markup=False)
    if share is not None:
        console.print(f"criterion: {criterion}", markup=False)
