"""Wrong types and values through the Python API and the CLI's number options: deepmf's typed errors only.

``fit``, ``Recommender.load``/``save`` and ``TrainConfig`` raise ConfigError (a ValueError), ModelFormatError,
OutputError (an OSError) or ResourceError (a MemoryError) — never a bare AttributeError, TypeError,
IndexError, RuntimeError or MemoryError — with a one-line message that names the culprit. On the command line
every float option refuses NaN, infinities and negatives, naming the option (``--l2 nan`` blames l2).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _checks import FAST, assert_one_line_exit_2

import deepmf
from deepmf.errors import ConfigError, DeepMFError
from deepmf.recommender import Recommender
from deepmf.training.config import TrainConfig

FIT_MISUSE: list[tuple[str, dict[str, Any], str]] = [
    ("train is a number", {"train": 42}, "expected Ratings"),
    ("train is None", {"train": None}, "expected Ratings"),
    ("model is a number", {"model": 3}, "model must be a model name"),
    ("unknown model", {"model": "gpt"}, "unknown model"),
    ("factors a string", {"factors": "abc"}, "factors"),
    ("factors a float", {"factors": 2.5}, "factors"),
    ("layers an object", {"model": "deepmf", "layers": object()}, "layers"),
    ("dropout a string", {"model": "deepmf", "dropout": "x"}, "invalid option"),
    ("dropout 2", {"model": "deepmf", "dropout": 2.0}, "dropout"),
    ("epochs -1", {"epochs": -1}, "epochs"),
    ("epochs 2.5", {"epochs": 2.5}, "epochs must be an integer"),
    ("lr nan", {"lr": float("nan")}, "learning rate must be a finite number"),
    ("lr a string", {"lr": "fast"}, "lr must be a number"),
    ("l2 inf", {"l2": float("inf")}, "l2 must be a finite number"),
    ("valid_fraction a string", {"valid_fraction": "x"}, "validation fraction"),
    ("valid_fraction nan", {"valid_fraction": float("nan")}, "validation fraction"),
    ("device a number", {"device": 3}, "device must be str"),
    ("unknown device", {"device": "tpu"}, "unknown device"),
    ("init_std nan", {"init_std": float("nan")}, "init_std"),
    ("unknown option", {"bogus": 1}, "unknown option"),
    ("sparse 1", {"sparse": 1}, "sparse must be bool"),
    ("seed 2**70 (past torch's and Optuna's seeds)", {"seed": 2**70}, "a seed is an integer from 0 to 4294967295"),
    ("seed -1", {"seed": -1}, "a seed is an integer from 0 to 4294967295"),
    ("threads 10**6 (would exhaust the process starting them)", {"threads": 10**6}, "threads must be from 1 to 1024"),
]


@pytest.mark.parametrize(("changes", "match"), [(c, m) for _, c, m in FIT_MISUSE],
                         ids=[name for name, _, _ in FIT_MISUSE])
def test_fit_misuse_raises_config_error(trained, ratings_csv, changes: dict[str, Any], match: str) -> None:
    arguments = {"train": deepmf.load(str(ratings_csv)), "model": "mf", "epochs": 1, "threads": 1, **changes}
    train = arguments.pop("train")
    with pytest.raises(ConfigError, match=match) as info:
        deepmf.fit(train, **arguments)
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


@pytest.mark.parametrize("device", [5, "tpu", "cuda:x"])
def test_load_on_a_bad_device_raises_config_error(model_dir, device: Any) -> None:
    with pytest.raises(ConfigError):
        Recommender.load(model_dir, device=device)


@pytest.mark.parametrize("options", [{"overwrite": "yes"}, {"keep_checkpoint": 1}])
def test_save_flags_must_be_booleans(trained, tmp_path, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="True or False"):
        trained.save(tmp_path / "m", **options)
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("values", [{"lr": "abc"}, {"optimizer": 3}, {"epochs": True}, {"threads": 1.5},
                                    {"momentum": float("-inf")}, {"weight_decay": -1}])
def test_train_config_from_a_config_file_is_typed(values: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        TrainConfig.from_dict(values)


@pytest.mark.parametrize(("flag", "value", "name"), [
    ("--l2", "nan", "l2"), ("--l2", "inf", "l2"), ("--l2", "-1", "l2"),
    ("--lr", "nan", "learning rate"), ("--lr", "inf", "learning rate"), ("--lr", "0", "learning rate"),
    ("--weight-decay", "nan", "weight_decay"), ("--weight-decay", "-inf", "weight_decay"),
    ("--val-fraction", "nan", "validation fraction"), ("--dropout", "nan", "dropout"),
])
def test_float_options_refuse_nan_infinity_and_negatives_naming_the_option(run, ratings_csv, flag: str,
                                                                           value: str, name: str) -> None:
    model = ("--model", "deepmf") if flag == "--dropout" else ()
    assert_one_line_exit_2(run("train", ratings_csv, *model, flag, value, *FAST), name)


@pytest.mark.parametrize(("argv", "needle"), [
    (("train", "{data}", "--seed", str(2**70)), "a seed is an integer from 0 to 4294967295"),
    (("evaluate", "{data}", "--model", "mf", "--seed", str(2**70)), "a seed is an integer"),
    (("tune", "{data}", "--trials", "1", "--seed", str(2**40)), "a seed is an integer"),
    (("synthetic", "--seed", "-1"), "a seed is an integer"),
    (("train", "{data}", "--threads", "100000"), "threads must be from 1 to 1024"),
    (("train", "{data}", "--dist-timeout", "nan"), "--dist-timeout must be a positive number"),
    (("train", "{data}", "--dist-timeout", "inf"), "--dist-timeout must be a positive number"),
    (("train", "{data}", "--dist-timeout", "-1"), "--dist-timeout must be a positive number"),
    (("train", "{data}", "--model", "deepmf", "--layers", "64,,64"), "layers must be comma-separated"),
    (("evaluate", "{data}", "--model", "mf", "-k", "0"), "k (the ranking list length) must be a positive"),
])
def test_numbers_no_engine_takes_are_refused_naming_the_option(run, ratings_csv, argv: tuple[str, ...],
                                                               needle: str) -> None:
    # Each of these was a traceback (seeds past 2**63 in torch, 2**32 in Optuna, -1 in the synthetic data;
    # 100,000 threads), silently accepted (--dist-timeout outside torchrun, an empty layer width) or named
    # the wrong option (-k blamed "n").
    filled = [str(ratings_csv) if a == "{data}" else a for a in argv]
    fast = ("--threads", "1", "--epochs", "1") if argv[0] in ("train", "evaluate") and "--threads" not in argv else ()
    assert_one_line_exit_2(run(*filled, *fast), needle)


@pytest.mark.parametrize(("call", "needle"), [
    (lambda rec: rec.predict(True, 1), "unknown user id True"),  # True == 1 in Python: not user 1
    (lambda rec: rec.predict([1, 2], 1), r"unknown user id \[1, 2\]"),
    (lambda rec: rec.predict(2**70, 1), "unknown user id 1180591620717411303424"),
    (lambda rec: rec.recommend(2**70), "unknown user id"),
    (lambda rec: rec.recommend_many(1), "users must be a list or array of user ids"),
    (lambda rec: rec.recommend_many("12"), "users must be a list or array of user ids, not str"),
])
def test_ids_no_map_holds_are_unknown_not_raw_errors(trained, call, needle: str) -> None:
    with pytest.raises(DeepMFError, match=needle) as info:
        call(trained)
    assert isinstance(info.value, (KeyError, ValueError)) and "\n" not in str(info.value)


def test_ids_that_hold_an_integer_exactly_still_find_it(trained) -> None:
    expected = trained.predict(1, 1).prediction
    for user in (1.0, "01", " 1 ", "1.0", np.int64(1)):
        assert trained.predict(user, 1).prediction == expected
    assert trained.recommend_many(u for u in [1, 2]).user.unique().tolist() == [1, 2]  # any iterable


def test_compare_refuses_an_unknown_blend_member_before_training(run, ratings_csv,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import deepmf.evaluation.cross_validation as cv

    monkeypatch.setattr(cv, "cross_validate", lambda *a, **k: pytest.fail("trained before checking the names"))
    assert_one_line_exit_2(run("compare", ratings_csv, "--models", "mf", "--models", "blend:mf,gpt"),
                           "unknown blend member 'gpt'")


def test_every_refusal_is_a_deepmf_error() -> None:
    # The typed errors callers may catch as the standard families.
    from deepmf.errors import ModelFormatError, OutputError, ResourceError

    assert issubclass(ConfigError, ValueError) and issubclass(OutputError, OSError)
    assert issubclass(ResourceError, MemoryError)
    assert all(issubclass(kind, DeepMFError) for kind in (ConfigError, OutputError, ResourceError,
                                                          ModelFormatError))
