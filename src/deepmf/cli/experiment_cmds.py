"""Commands that train and compare on a split: evaluate (one model, every fold) and compare (several models).

Each command parses its flags, calls the Python API (``deepmf.experiment``, ``deepmf.evaluation.cross_validation``,
``deepmf.report``) and prints a table of test metrics, or one JSON object with ``--json``. Errors are
DeepMFErrors: one line on stderr, exit code 2 (see ``cli/common.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from deepmf.cli.app import app
from deepmf.cli.common import console, err_console, print_json
from deepmf.cli.metric_table import fold_table
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
    TrainFlags,
    ValFractionOpt,
    option_groups,
    run_options,
)
from deepmf.errors import ConfigError


@app.command()
@option_groups
def evaluate(
    data: DataArg,
    model: ModelOpt = None,
    split: SplitOpt = None,
    model_flags: ModelFlags = ModelFlags(),
    train_flags: TrainFlags = TrainFlags(),
    val_fraction: ValFractionOpt = None,
    config: ConfigOpt = None,
    k: KOpt = 10,
    protocol: ProtocolOpt = "full",
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Save each fold's model under OUT/<fold>.", show_default=False),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace deepmf models already in OUT/<fold> (never anything else).")
    ] = False,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
    loader: LoaderFlags = LoaderFlags(),
) -> None:
    """Train one model per fold of a split; report each fold and mean ± std (as Surprise's cross_validate)."""
    from deepmf.data.splits import default_split, parse_split
    from deepmf.evaluation.cross_validation import cross_validate
    from deepmf.experiment import RunConfig, default_model, train_config_for
    from deepmf.folders import check_model_target
    from deepmf.recommender.evaluate import check_protocol

    run = RunConfig.read(config) if config is not None else RunConfig()
    model_name = model or run.model or default_model(loader.feedback)
    options, train_options = run_options([model_name], model_flags, train_flags, run)[model_name]
    train_config = train_config_for(model_name, train_options, loader.feedback)
    check_protocol(protocol, loader.feedback == "implicit")
    ratings = loader.load(data)
    spec = split or default_split(ratings)
    splits = parse_split(spec, ratings, seed=train_config.seed)
    if out is not None:  # before training any fold
        for chosen in splits:
            check_model_target(_fold_folder(out, chosen.name), overwrite=force)

    def on_fold(result: Any) -> None:
        if out is not None:
            result.recommender.save(_fold_folder(out, result.split), overwrite=force)
        if not json:
            key, name = ("rmse", "RMSE") if "rmse" in result.metrics else ("ndcg", f"NDCG@{k}")
            err_console.print(f"{result.split}: {name} {result.metrics.get(key, float('nan')):.4f}")

    cv = cross_validate(
        ratings,
        splits,
        model_name,
        options,
        train_config,
        valid_fraction=val_fraction,
        k=k,
        protocol=protocol,
        progress=not (quiet or json),
        on_fold=on_fold,
    )
    if json:
        print_json({"split": spec, "k": k, "protocol": protocol, **cv.to_dict()})
        return
    console.print(
        fold_table(f"{model_name} on {ratings.name} ({spec})", cv.folds, "split", k, cv.mean, cv.std)
    )


def _fold_folder(out: Path, split_name: str) -> Path:
    """OUT/<fold>, the fold's name made a folder name ("kfold:5/2" -> "kfold_5_2")."""
    return out / split_name.replace("/", "_").replace(":", "_")


# The training options of the first model that the baseline compare adds for implicit feedback shares.
POP_TRAIN_OPTIONS = ("seed", "device", "threads")


def _split_models(values: list[str]) -> list[str]:
    """``--models mf,deepmf --models blend:mf,svdpp`` -> [mf, deepmf, blend:mf,svdpp].

    A value naming a composite model (it has a ':') is taken whole, since its own arguments contain commas.
    """
    names: list[str] = []
    for value in values:
        names += [value.strip()] if ":" in value else [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise ConfigError("name at least one model with --models")
    return names


@app.command()
@option_groups
def compare(
    data: DataArg,
    models: Annotated[
        list[str],
        typer.Option(
            "--models",
            help="Comma-separated model names; repeat the flag for a composite name such as blend:mf,svdpp.",
        ),
    ],
    split: SplitOpt = None,
    model_flags: ModelFlags = ModelFlags(),
    train_flags: TrainFlags = TrainFlags(),
    val_fraction: ValFractionOpt = None,
    k: KOpt = 10,
    protocol: ProtocolOpt = "full",
    report: ReportOpt = None,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
    loader: LoaderFlags = LoaderFlags(),
) -> None:
    """Train several models on the same split(s) and print their test metrics side by side.

    A model flag (or -o KEY=VALUE) applies to every model and must be one each of them takes; -o MODEL.KEY=VALUE
    sets an option for one model. With --feedback implicit the popularity baseline pop is always among the
    models (with its own options: only the run's seed, device and threads).
    """
    from deepmf.data.splits import default_split, parse_split
    from deepmf.evaluation.cross_validation import cross_validate
    from deepmf.experiment import train_config_for
    from deepmf.models.registry import check_model_name
    from deepmf.recommender.evaluate import check_protocol

    names = _split_models(models)
    for name in names:
        check_model_name(name)  # "blend:mf,gpt" is refused before mf trains, not after
    options = run_options(names, model_flags, train_flags)
    if loader.feedback == "implicit" and "pop" not in names:
        # Any implicit model must be read against what popularity alone achieves.
        shared = {key: options[names[0]][1][key] for key in POP_TRAIN_OPTIONS if key in options[names[0]][1]}
        names.append("pop")
        options["pop"] = ({}, shared)
    # Refuse bad training options before training anything.
    configs = {name: train_config_for(name, options[name][1], loader.feedback) for name in names}
    check_protocol(protocol, loader.feedback == "implicit")
    seeds = {config.seed for config in configs.values()}
    if len(seeds) > 1:
        raise ConfigError("the models of compare share one split, and so one seed: set it for all of them "
                          "(--seed), not per model")
    if report is not None:
        from deepmf.report import check_report_target

        check_report_target(report)
    ratings = loader.load(data)
    spec = split or default_split(ratings)
    splits = parse_split(spec, ratings, seed=seeds.pop())
    rows, first_fold = [], {}
    for name in names:
        if not json:
            err_console.print(f"training {name} ...")
        cv = cross_validate(
            ratings,
            splits,
            name,
            options[name][0],
            configs[name],
            valid_fraction=val_fraction,
            k=k,
            protocol=protocol,
            progress=not (quiet or json),
            on_fold=lambda result: first_fold.setdefault(result.model_name, result.recommender),
        )
        rows.append(
            {
                "model": name,
                "folds": len(cv.folds),
                **cv.mean,
                "std": cv.std,
                "cold_test_ratings": cv.folds[0].get("cold_test_ratings"),
                "epochs_run": cv.folds[0].get("epochs_run"),
                "engine": cv.folds[0].get("engine"),
                "threads": cv.folds[0].get("threads"),
            }
        )
    report_path = None
    if report is not None:
        from deepmf.report import write_report

        report_path = write_report(
            report,
            first_fold,
            title=f"deepmf compare: {', '.join(names)}",
            data_name=ratings.name,
            split_name=splits[0].name,
        )
    if json:
        print_json(
            {"split": spec, "k": k, "protocol": protocol, "models": rows,
             **({"report": str(report_path)} if report_path else {})}
        )
        return
    sampled = " (sampled protocol: 99 negatives per held-out item)" if protocol == "sampled" else ""
    console.print(
        fold_table(
            f"{ratings.name} ({spec}): test metrics{sampled}" + (" (mean over folds)" if len(splits) > 1 else ""),
            rows,
            "model",
            k,
        )
    )
    if report_path is not None:
        console.print(f"report: {report_path}")
