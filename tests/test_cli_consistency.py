"""The command line is one language (CPU): every registered command is walked, so a new one is checked too.

- every command takes ``--json``; with it, an error (a bad flag, and bad input where the command reads any) is
  exactly one JSON object on stdout, and a successful run prints exactly one JSON object;
- every option and argument has help text, and rich (which renders ``--help``) prints it literally;
- an option that several commands share has the same help, default and short flag in each of them, unless it
  is listed below as meaning something different per command;
- the model and training flags of ``train`` are those of ``evaluate``, ``compare`` and ``tune``, mapped to the
  same options (``run_options``): a flag and ``-o``/``-t`` for the same option is an error, a model option a
  model of ``compare`` does not take is an error naming that model;
- the commands that split data default to the same split.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import typer
from rich.text import Text

from deepmf.cli.app import _register, app
from deepmf.cli.options import ModelFlags, TrainFlags, run_options
from deepmf.errors import ConfigError

# Options whose meaning is the command's own, so their help differs on purpose.
COMMAND_SPECIFIC = {
    "--out": "what is written depends on the command: a model folder, a config file, PNGs, a parquet file, "
             "every user's top-N (recommend --all-users)",
    "--force": "replace what the command writes (train, evaluate), or download again (download)",
    "--threads": "training threads (train, evaluate, compare, tune) vs. a service worker's torch threads (serve)",
    "--test": "train's held-out ratings vs. the ratings plot draws its histograms from",
}
# Options of one command that share a name with the common ones but not their choices or defaults.
OWN_CHOICES = {
    ("tune", "--model"): "only the models that have a search space",
    ("synthetic", "--model"): "tutorial 000's fixed experiment: mf or deepmf",
    ("synthetic", "--optimizer"): "tutorial 000's fixed experiment: sgd or adam",
    ("synthetic", "--epochs"): "tutorial 000's fixed experiment: 5 epochs by default",
    ("synthetic", "--seed"): "seeds the generated data too; default 0",
}
# Commands whose successful --json run is checked in another test (needing a faked network).
SUCCESS_ELSEWHERE = {
    "download": "tests/test_cli_data.py::test_download_command_json (a local mirror)",
    "demo": "tests/test_demo.py::test_demo_command_json (offline, small generated data)",
    "serve": "tests/service/test_service_server.py::test_serve_json_prints_one_object_and_ctrl_c_stops_it (a "
             "server runs until stopped)",
}
TRAINING = ("train", "evaluate", "compare", "tune")


# typer has its own copy of click (``typer._click``): commands and parameters are recognised by their interface.
def _commands() -> dict[str, Any]:
    _register()
    return dict(typer.main.get_command(app).commands)  # type: ignore[attr-defined]


def _options(command: Any) -> dict[str, Any]:
    """The command's options by long name (``--help`` left out: click adds it alike to every command)."""
    return {next(o for o in p.opts if o.startswith("--")): p for p in command.params
            if p.param_type_name == "option" and "--help" not in p.opts}


def _arguments(command: Any) -> list[Any]:
    return [p for p in command.params if p.param_type_name == "argument"]


def test_every_command_takes_json() -> None:
    missing = [name for name, command in _commands().items() if "--json" not in _options(command)]
    assert not missing


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_and_argument_has_help_rich_prints_literally(name: str) -> None:
    for param in _commands()[name].params:
        text = getattr(param, "help", None)
        assert text and text.strip(), (name, param.name)
        # `[tensorboard]` would vanish as a style tag: escape it as `\[`.
        assert Text.from_markup(text).plain == text.replace("\\[", "["), (name, param.name)
    assert _commands()[name].help, name


def test_shared_options_have_the_same_help_default_and_short_flag() -> None:
    seen: dict[str, dict[tuple[Any, ...], list[str]]] = defaultdict(lambda: defaultdict(list))
    for name, command in _commands().items():
        for long_name, option in _options(command).items():
            if long_name in COMMAND_SPECIFIC or (name, long_name) in OWN_CHOICES:
                continue
            shorts = tuple(sorted(o for o in option.opts + option.secondary_opts if not o.startswith("--")))
            seen[long_name][(option.help, repr(option.default), shorts)].append(name)
    differing = {long_name: dict(variants) for long_name, variants in seen.items() if len(variants) > 1}
    assert not differing
    # A short flag stands for one long option everywhere.
    short: dict[str, set[str]] = defaultdict(set)
    for long_name, variants in seen.items():
        for _, _, shorts in variants:
            for flag in shorts:
                short[flag].add(long_name)
    assert all(len(longs) == 1 for longs in short.values()), dict(short)


def test_training_commands_share_the_model_and_training_flags() -> None:
    commands = _commands()
    flags = {f"--{field.replace('_', '-')}" for field in (*ModelFlags.__dataclass_fields__,
                                                             *TrainFlags.__dataclass_fields__)}
    for name in TRAINING:
        assert flags <= set(_options(commands[name])), name
    split = {name: _options(commands[name])["--split"] for name in TRAINING}
    assert len({(o.help, o.default) for o in split.values()}) == 1


# ---- errors and successes under --json -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ratings_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from deepmf.testing.conformance import conformance_data

    path = tmp_path_factory.mktemp("consistency") / "ratings.csv"
    conformance_data().to_frame().to_csv(path, index=False)
    return path


def _one_json_object(out: str) -> dict[str, Any]:
    """stdout is exactly one JSON object on one line."""
    assert out.endswith("\n") and out.count("\n") == 1, out
    payload = json.loads(out)
    assert isinstance(payload, dict)
    return payload


def _bad_input(name: str, command: Any, tmp_path: Path) -> list[str] | None:
    """Arguments that make the command fail on its input (not its flags), or None where it reads none."""
    first = next((p.name for p in _arguments(command)), None)
    if first == "data":
        return [name, "no-such-edition"]
    if first == "model_dir":
        return [name, str(tmp_path / "no-model"), *["1"] * (len(_arguments(command)) - 1)]
    if first == "name":
        return [name, "no-such-edition"]
    return None


@pytest.mark.parametrize("name", sorted(_commands()))
def test_an_error_under_json_is_one_json_object(name: str, run, tmp_path: Path) -> None:
    command = _commands()[name]
    code, out, err = run(name, *["x"] * len(_arguments(command)), "--no-such-flag", "--json")
    assert code == 2 and _one_json_object(out) == {"error": "No such option: --no-such-flag", "exit_code": 2}
    assert "Traceback" not in err
    argv = _bad_input(name, command, tmp_path)
    if argv is not None:
        code, out, err = run(*argv, "--json")
        payload = _one_json_object(out)
        assert code == 2 and set(payload) == {"error", "exit_code"} and payload["exit_code"] == 2
        assert "Traceback" not in err


@pytest.fixture(scope="module")
def model_dir(ratings_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    import sys

    from deepmf.cli.common import run_app

    out = tmp_path_factory.mktemp("model") / "mf"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["deepmf", "train", str(ratings_csv), "--factors", "4", "--epochs", "2",
                                    "--out", str(out), "--quiet", "--json"])
        assert run_app(app) == 0
    return out


def _successes(csv: Path, model: Path, tmp: Path) -> dict[str, list[str]]:
    """A successful command line of every command, small enough to run in a second or two."""
    user, item = "1", "1"
    fast = ["--epochs", "1", "--threads", "1"]
    return {
        "version": [],
        "datasets": ["--dir", str(tmp / "data")],
        "info": [str(csv)],
        "train": [str(csv), *fast],
        "evaluate": [str(csv), "--split", "kfold:2", *fast],
        "compare": [str(csv), "--models", "mf,deepmf", "--factors", "4", *fast],
        "tune": [str(csv), "--trials", "1", *fast],
        "synthetic": ["--kind", "noise", "--epochs", "1"],
        "predict": [str(model), user, item],
        "recommend": [str(model), user, "-n", "3"],
        "rated": [str(model), user],
        "similar": [str(model), item, "-n", "3"],
        "plot": [str(model), "--out", str(tmp / "plots")],
        "export": [str(model), "--out", str(tmp / "vectors.parquet")],
    }


def test_every_command_has_a_success_case() -> None:
    cases = set(_successes(Path(), Path(), Path()))
    assert set(_commands()) == cases | set(SUCCESS_ELSEWHERE), "add the new command's case to _successes"


@pytest.mark.parametrize("name", sorted(set(_commands()) - set(SUCCESS_ELSEWHERE)))
def test_a_success_under_json_is_one_json_object(name: str, run, ratings_csv: Path, model_dir: Path,
                                                 tmp_path: Path) -> None:
    code, out, err = run(name, *_successes(ratings_csv, model_dir, tmp_path)[name], "--json")
    assert code == 0, err
    assert "error" not in _one_json_object(out)


# ---- the flags of train, evaluate, compare and tune, as run_options maps them --------------------------------
def test_flags_and_assignments_map_to_the_same_options() -> None:
    by_flags = run_options(["deepmf"], ModelFlags(factors=8, layers="16,8", no_bias=True, batchnorm=True),
                           TrainFlags(lr=0.01, epochs=3))["deepmf"]
    by_assignments = run_options(["deepmf"], ModelFlags(option=["factors=8", "layers=16,8", "bias=false",
                                                                "batchnorm=true"]),
                                 TrainFlags(train_option=["lr=0.01", "epochs=3"]))["deepmf"]
    assert by_flags[1] == by_assignments[1] == {"lr": 0.01, "epochs": 3}
    assert by_flags[0] == {"factors": 8, "layers": "16,8", "bias": False, "batchnorm": True}
    assert by_assignments[0] == {"factors": 8, "layers": [16, 8], "bias": False, "batchnorm": True}


def test_per_model_assignments_and_the_config_file_under_the_command_line() -> None:
    from deepmf.experiment import RunConfig

    options = run_options(["mf", "deepmf"], ModelFlags(factors=8, option=["deepmf.layers=[4]"]),
                          TrainFlags(train_option=["mf.lr=0.05"]))
    assert options == {"mf": ({"factors": 8}, {"lr": 0.05}), "deepmf": ({"factors": 8, "layers": [4]}, {})}
    config = RunConfig("mf", {"factors": 64, "bias": False}, {"lr": 0.1, "epochs": 9})
    assert run_options(["mf"], ModelFlags(factors=8), TrainFlags(epochs=2), config)["mf"] == (
        {"factors": 8, "bias": False}, {"lr": 0.1, "epochs": 2})


@pytest.mark.parametrize(("models", "model_flags", "train_flags", "message"), [
    (["mf"], ModelFlags(factors=8, option=["factors=16"]), TrainFlags(),
     "option factors is set twice, by --factors 8 and by -o factors=16"),
    (["mf", "deepmf"], ModelFlags(factors=8, option=["mf.factors=16"]), TrainFlags(),
     "option factors is set twice, by --factors 8 and by -o mf.factors=16"),
    (["mf"], ModelFlags(), TrainFlags(lr=0.1, train_option=["lr=0.2"]), "option lr is set twice"),
    (["mf"], ModelFlags(option=["factors=1", "factors=2"]), TrainFlags(), "option factors is set twice"),
    (["mf", "bayes"], ModelFlags(factors=8), TrainFlags(),
     "model 'bayes' does not take --factors 8 (its options: rank, samples"),
    (["mf", "deepmf"], ModelFlags(layers="8"), TrainFlags(), "model 'mf' does not take --layers 8"),
    (["mf"], ModelFlags(no_bias=True, sigmoid=True, option=["hidden=3"]), TrainFlags(),
     "model 'mf' does not take -o hidden=3"),
    (["mf"], ModelFlags(option=["deepmf.layers=[4]"]), TrainFlags(),
     "names model 'deepmf', which is not one of the models trained here (mf)"),
    (["mf"], ModelFlags(option=["factors"]), TrainFlags(), "-o 'factors' is not KEY=VALUE"),
])
def test_refusals(models, model_flags, train_flags, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        run_options(models, model_flags, train_flags)


def test_compare_refuses_a_flag_one_model_does_not_take_before_reading_data(run, tmp_path: Path) -> None:
    # The data does not exist: the option is refused first, so no model trains before the error.
    code, out, _ = run("compare", tmp_path / "missing.csv", "--models", "mf,deepmf", "--layers", "8", "--json")
    assert code == 2 and "model 'mf' does not take --layers 8" in json.loads(out)["error"]
    code, out, _ = run("compare", tmp_path / "missing.csv", "--models", "mf,deepmf", "-t", "mf.seed=3", "--json")
    assert code == 2 and "one seed" in json.loads(out)["error"]


def test_evaluate_and_compare_take_the_flags_train_takes(run, ratings_csv: Path) -> None:
    flags = ("--factors", "3", "--lr", "0.01", "--epochs", "2", "--patience", "0", "--seed", "4", "--threads", "1")
    code, out, _ = run("train", ratings_csv, "--model", "mf", *flags, "--json")
    trained = json.loads(out)
    code_e, out, _ = run("evaluate", ratings_csv, "--model", "mf", *flags, "--json")
    evaluated = json.loads(out)
    code_c, out, _ = run("compare", ratings_csv, "--models", "mf", *flags, "--json")
    compared = json.loads(out)
    assert (code, code_e, code_c) == (0, 0, 0)
    # The same split (the default, seeded by --seed), options and seed: the same model, the same test RMSE.
    assert trained["split"] == evaluated["split"] == compared["split"] == "random:0.2"
    assert evaluated["folds"][0]["rmse"] == pytest.approx(trained["test"]["rmse"], rel=1e-6)
    assert compared["models"][0]["rmse"] == pytest.approx(trained["test"]["rmse"], rel=1e-6)
    assert trained["epochs_run"] == evaluated["folds"][0]["epochs_run"] == 2


@pytest.mark.parametrize("argv", [
    ("train", "--model", "mf", "--epochs", "1"),
    ("evaluate", "--model", "mf", "--epochs", "1"),
    ("compare", "--models", "mf", "--epochs", "1"),
    ("tune", "--model", "mf", "--trials", "1", "--epochs", "1"),
])
def test_every_command_splits_ml100k_at_u1_by_default(argv, run, data_root: Path) -> None:
    name, *flags = argv
    code, out, err = run(name, "ml-100k", "--dir", data_root, *flags, "--quiet", "--json")
    assert code == 0, err
    assert json.loads(out)["split"] == "u1"


def test_the_default_split_rule(data_root: Path, ratings_csv: Path) -> None:
    from deepmf.data import load
    from deepmf.data.splits import default_split

    assert default_split(load(data_root / "ml-100k")) == "u1"  # the folder is the edition too
    assert default_split(load(ratings_csv)) == "random:0.2"
    # Implicit feedback: per user, so that every test user keeps a history to rank from (ML-100K too).
    assert default_split(load(data_root / "ml-100k", feedback="implicit")) == "user:0.2"
    assert default_split(load(ratings_csv, feedback="implicit", positive=4)) == "user:0.2"


def test_a_value_given_by_o_builds_the_model_its_flag_builds() -> None:
    from deepmf.models.registry import create_model
    from deepmf.testing.conformance import conformance_data

    data = conformance_data()
    by_flag, by_o = (run_options(["deepmf"], flags, TrainFlags())["deepmf"][0]
                     for flags in (ModelFlags(layers="32", features="genres"), ModelFlags(option=["layers=32"])))
    assert by_o == {"layers": 32}
    assert create_model("deepmf", data, **by_o).config.layers == create_model(
        "deepmf", data, layers=by_flag["layers"]).config.layers == (32,)
