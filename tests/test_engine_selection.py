"""Engine choice (CPU): explicit engines are checked, and no engine is ever handed an option it would ignore.

``deepmf.training.engines.ENGINES`` declares, per engine, which training options it honours; one test per engine
below checks that a chosen option it cannot honour either moves the run to an engine that can (with a note) or
is an error.
"""

from __future__ import annotations

import os

import pytest
import torch

from deepmf import device
from deepmf.data.synthetic import synthetic_ratings
from deepmf.errors import ConfigError
from deepmf.experiment import train_config_for
from deepmf.models.registry import create_model
from deepmf.training.config import TrainConfig, option_names
from deepmf.training.engines import ENGINES, TRAINER_OPTIONS, place, select_engine
from deepmf.training.trainer import Trainer

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def data():
    return synthetic_ratings("lowrank", n_users=20, n_items=20, n_observed=200, seed=0)


def choose(data, model: str, **chosen):
    """select_engine for ``model`` with its tuned defaults and ``chosen`` set by the user."""
    return select_engine(create_model(model, data), train_config_for(model, chosen), CPU)


def test_defaults_run_on_the_preferred_engine_and_record_what_it_does(data):
    choice = choose(data, "mf")
    assert (choice.name, choice.note) == ("numba", "")
    # MF's tuned defaults name Adam at batch 4096 (for the torch engine); the numba engine's record says SGD.
    assert (choice.config.optimizer, choice.config.batch_size, choice.config.momentum) == ("sgd", 1, 0.0)


def test_torch_engine_honours_momentum_only_where_the_optimizer_has_one(data):
    assert choose(data, "deepmf", optimizer="sgd", momentum=0.5).name == "torch"
    with pytest.raises(ConfigError, match=r"torch engine cannot honour momentum=0\.5"):
        choose(data, "deepmf", optimizer="adam", momentum=0.5)
    assert "momentum" in choose(data, "deepmf").unused  # adam by default: its momentum value does not apply


@pytest.mark.parametrize("chosen", [{"optimizer": "adam"}, {"optimizer": "rmsprop"}, {"weight_decay": 0.01},
                                    {"batch_size": 256}, {"lr_schedule": "cosine"},
                                    {"momentum": 0.5, "optimizer": "sgd"}])
def test_numba_engine_hands_what_it_cannot_honour_to_torch_and_says_so(data, chosen):
    choice = choose(data, "mf", **chosen)
    assert choice.name == "torch"
    key, value = next(iter(chosen.items()))
    assert choice.note == f"the numba engine cannot honour {key}={value}"
    assert getattr(choice.config, key) == value


def test_numba_engine_takes_what_it_does_implement(data):
    assert choose(data, "mf", optimizer="sgd", batch_size=1, lr=0.01, l2=0.05).name == "numba"


def test_named_engine_that_cannot_honour_an_option_is_an_error(data):
    with pytest.raises(ConfigError, match="numba engine cannot honour optimizer=adam"):
        choose(data, "mf", engine="numba", optimizer="adam")


def test_svdpp_engine_hands_adam_to_torch(data):
    choice = choose(data, "svdpp", optimizer="adam")
    assert (choice.name, choice.note) == ("torch", "the svdpp engine cannot honour optimizer=adam")


@pytest.mark.parametrize("chosen", [{"lr": 0.01}, {"l2": 0.1}, {"optimizer": "sgd"}, {"batch_size": 64},
                                    {"lr_schedule": "step"}])
def test_gibbs_engine_refuses_optimisation_options(data, chosen):
    with pytest.raises(ConfigError, match="gibbs engine cannot honour"):
        choose(data, "bayes", **chosen)


def test_gibbs_engine_takes_trainer_options(data):
    choice = choose(data, "bayes", epochs=50, seed=3, threads=1)
    assert choice.name == "gibbs"
    assert {"lr", "l2", "optimizer", "batch_size"} <= set(choice.unused)


@pytest.mark.parametrize("chosen", [{"optimizer": "adam"}, {"batch_size": 64}, {"lr_schedule": "cosine"},
                                    {"weight_decay": 0.1}])
def test_autorec_engine_refuses_what_rprop_does_not_do(data, chosen):
    with pytest.raises(ConfigError, match="autorec engine cannot honour"):
        choose(data, "autorec", **chosen)
    assert choose(data, "autorec", lr=0.01, l2=10.0).name == "autorec"


@pytest.mark.parametrize("chosen", [{"epochs": 5}, {"patience": 3}, {"lr": 0.01}, {"optimizer": "sgd"}])
def test_blend_engine_refuses_what_only_its_members_could_use(data, chosen):
    with pytest.raises(ConfigError, match="blend engine cannot honour"):
        choose(data, "blend:mf,autorec", **chosen)
    assert choose(data, "blend:mf,autorec", seed=2, threads=1).name == "blend"


def test_every_engine_says_something_about_every_option():
    for spec in ENGINES.values():
        declared = spec.reads | TRAINER_OPTIONS | set(spec.implies) | set(spec.reads_if)
        assert declared <= set(option_names())
    # Every option but negatives, which only the engines that draw negatives read (bpr, sampled).
    assert ENGINES["torch"].reads == frozenset(option_names()) - {"negatives"}
    assert ENGINES["sampled"].reads == frozenset(option_names())
    assert [name for name, spec in ENGINES.items() if "negatives" in spec.reads] == ["bpr", "sampled"]


@pytest.fixture(scope="module")
def interactions():
    from deepmf.data.synthetic import planted_interactions

    return planted_interactions(n_users=20, n_items=20, n_groups=2, per_user=5)


def choose_implicit(data, model: str, **chosen):
    return select_engine(create_model(model, data), train_config_for(model, chosen, "implicit"), CPU)


@pytest.mark.parametrize(("model", "chosen"), [
    ("ials", {"lr": 0.1}), ("ials", {"l2": 0.1}), ("ials", {"negatives": 2}), ("ials", {"optimizer": "adam"}),
    ("ease", {"epochs": 3}), ("pop", {"l2": 0.1}), ("ease", {"patience": 2}), ("bpr", {"optimizer": "adam"}),
    ("bpr", {"weight_decay": 0.1}), ("bpr", {"batch_size": 64}),
])
def test_implicit_engines_refuse_what_they_cannot_honour(interactions, model, chosen):
    key, value = next(iter(chosen.items()))
    with pytest.raises(ConfigError, match=f"engine cannot honour {key}={value}"):
        choose_implicit(interactions, model, **chosen)


def test_implicit_engines_take_what_they_do(interactions, data):
    assert choose_implicit(interactions, "bpr", lr=0.01, l2=0.01, negatives=3).name == "bpr"
    assert choose_implicit(interactions, "ials", epochs=5, patience=2, threads=1).name == "ials"
    assert choose_implicit(interactions, "ease", seed=1).name == "closed"
    choice = choose_implicit(interactions, "neumf", negatives=2, optimizer="sgd", momentum=0.5)
    assert choice.name == "sampled" and choice.config.negatives == 2
    # Rating models draw no negatives: the option is refused, not ignored.
    with pytest.raises(ConfigError, match="torch engine cannot honour negatives=2"):
        choose(data, "deepmf", negatives=2)


def test_a_config_built_directly_counts_values_off_the_defaults_as_chosen(data):
    model = create_model("mf", data)
    assert select_engine(model, TrainConfig(optimizer="sgd"), CPU).name == "numba"
    assert select_engine(model, TrainConfig(optimizer="rmsprop"), CPU).name == "torch"
    assert select_engine(model, TrainConfig(weight_decay=0.01), CPU).name == "torch"


def test_sigmoid_mf_is_torch_only(data):
    model = create_model("mf", data, sigmoid=True)
    assert select_engine(model, TrainConfig(optimizer="sgd"), CPU).name == "torch"
    with pytest.raises(ConfigError, match="cannot train"):
        select_engine(model, TrainConfig(engine="numba"), CPU)


def test_deep_model_refuses_numba(data):
    with pytest.raises(ConfigError, match="cannot train model 'deepmf'"):
        select_engine(create_model("deepmf", data), TrainConfig(engine="numba"), CPU)


def test_trainer_records_the_switch_and_the_options_as_run(data, caplog):
    config = train_config_for("mf", {"optimizer": "adam", "epochs": 1, "threads": 1})
    with caplog.at_level("WARNING", logger="deepmf"):
        result = Trainer(config, progress=False).fit(create_model("mf", data), data)
    assert (result.engine, result.config.optimizer, result.threads) == ("torch", "adam", 1)
    assert "the numba engine cannot honour optimizer=adam" in caplog.text
    plain = Trainer(train_config_for("mf", {"epochs": 1}), progress=False).fit(create_model("mf", data), data)
    assert (plain.engine, plain.config.optimizer, plain.engine_note) == ("numba", "sgd", "")


@pytest.mark.parametrize("chosen", [{"patience": 2}, {"lr_schedule": "plateau"}])
def test_options_that_act_on_validation_need_validation_ratings(data, chosen):
    config = train_config_for("deepmf", {"epochs": 2, **chosen})
    with pytest.raises(ConfigError, match="no validation ratings"):
        Trainer(config, progress=False).fit(create_model("deepmf", data), data, None)


def test_small_data_runs_on_one_thread_large_data_on_every_core(monkeypatch) -> None:
    import numba

    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 4)
    assert device.default_cpu_threads(0) == 1
    assert device.default_cpu_threads(device.PARALLEL_FROM_RATINGS - 1) == 1
    assert device.default_cpu_threads(device.PARALLEL_FROM_RATINGS) == 4


def test_torch_threads_default_to_one_on_small_data_and_to_the_idle_cores_on_large(monkeypatch) -> None:
    from deepmf import device

    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    monkeypatch.setattr(device, "idle_cores", lambda: 3.8)
    assert device.default_torch_threads(device.TORCH_PARALLEL_FROM_RATINGS - 1) == 1
    assert device.default_torch_threads(device.TORCH_PARALLEL_FROM_RATINGS) == 4
    monkeypatch.setattr(device, "idle_cores", lambda: 1.7)
    assert device.default_torch_threads(10**8) == 2
    monkeypatch.setattr(device, "idle_cores", lambda: 0.2)  # every core busy: one thread, never zero
    assert device.default_torch_threads(10**8) == 1
    monkeypatch.setattr(device, "idle_cores", lambda: None)  # no /proc/stat
    assert device.default_torch_threads(10**8) == 1


def test_idle_cores_reads_a_share_of_the_cores() -> None:
    from deepmf import device

    idle = device.idle_cores(0.05)
    if idle is None:
        pytest.skip("no /proc/stat here")
    assert 0.0 <= idle <= len(os.sched_getaffinity(0)) + 1e-9


def test_trainer_runs_the_torch_engine_on_the_default_thread_count(data) -> None:
    result = Trainer(train_config_for("deepmf", {"epochs": 1}), progress=False).fit(
        create_model("deepmf", data), data, data)
    assert (result.engine, result.threads) == ("torch", 1)


# ---- _place(): the device and engine "auto" gives, as on a CUDA machine (CUDA faked: nothing runs there) ------
def _place(model, config: TrainConfig, n_ratings: int) -> tuple[torch.device, str]:
    device, choice = place(model, config, n_ratings)
    return device, choice.name


@pytest.fixture()
def cuda_present(monkeypatch):
    """A machine with CUDA, as far as ``place`` can tell, and no device forced by the environment."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.delenv("DEEPMF_DEVICE", raising=False)


def test_auto_keeps_small_mf_on_the_numba_cpu_engine_and_sends_large_mf_to_cuda_sgd(data, cuda_present):
    mf = create_model("mf", data)
    config = TrainConfig(optimizer="sgd")
    threshold = device.GPU_FROM_RATINGS[("cuda-sgd", "numba")]
    assert _place(mf, config, threshold - 1) == (torch.device("cpu"), "numba")
    assert _place(mf, config, threshold) == (torch.device("cuda"), "cuda-sgd")


def test_auto_sends_deep_models_to_the_gpu_at_any_size(data, cuda_present):
    assert _place(create_model("deepmf", data), TrainConfig(), 100) == (torch.device("cuda"), "torch")


def test_auto_bayes_uses_the_torch_sampler_on_the_gpu_from_its_threshold(data, cuda_present):
    bayes = create_model("bayes", data)
    threshold = device.GPU_FROM_RATINGS[("gibbs-torch", "gibbs")]
    assert _place(bayes, TrainConfig(), threshold - 1) == (torch.device("cpu"), "gibbs")
    assert _place(bayes, TrainConfig(), threshold) == (torch.device("cuda"), "gibbs-torch")


def test_auto_keeps_small_closed_form_models_on_the_cpu(data, cuda_present):
    from deepmf.data.implicit import to_implicit

    threshold = device.GPU_FROM_RATINGS[("closed", "closed")]
    for name in ("ease", "pop"):
        model = create_model(name, to_implicit(data))
        assert _place(model, TrainConfig(), threshold - 1) == (torch.device("cpu"), "closed")
        assert _place(model, TrainConfig(), threshold) == (torch.device("cuda"), "closed")


def test_a_named_engine_decides_the_device_under_auto(data, cuda_present):
    mf = create_model("mf", data)
    assert _place(mf, TrainConfig(engine="numba"), 10**9) == (torch.device("cpu"), "numba")
    assert _place(mf, TrainConfig(engine="cuda-sgd"), 10) == (torch.device("cuda"), "cuda-sgd")


def test_a_named_device_is_used_as_given(data, cuda_present, monkeypatch):
    mf = create_model("mf", data)
    assert _place(mf, TrainConfig(device="cpu"), 10**9) == (torch.device("cpu"), "numba")
    assert _place(mf, TrainConfig(device="cuda"), 10) == (torch.device("cuda"), "cuda-sgd")
    monkeypatch.setenv("DEEPMF_DEVICE", "cpu")
    assert _place(mf, TrainConfig(), 10**9) == (torch.device("cpu"), "numba")


def test_without_cuda_auto_is_the_cpu(data, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.delenv("DEEPMF_DEVICE", raising=False)
    assert _place(create_model("mf", data), TrainConfig(), 10**9) == (torch.device("cpu"), "numba")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        _place(create_model("mf", data), TrainConfig(device="cuda"), 10)


def test_auto_keeps_svdpp_on_its_cpu_engine(data, cuda_present):
    # The torch engine on the GPU is no substitute (test RMSE 1.34 against 0.12 on test_svdpp's data).
    assert _place(create_model("svdpp", data), TrainConfig(optimizer="sgd"), 10**9) == (torch.device("cpu"), "svdpp")


def test_cuda_sgd_is_skipped_for_more_factors_than_a_tile_holds(data):
    wide = create_model("mf", data, factors=300)
    assert select_engine(wide, TrainConfig(optimizer="sgd"), torch.device("cuda")).name == "torch"
    narrow = create_model("mf", data)
    assert select_engine(narrow, TrainConfig(optimizer="sgd"), torch.device("cuda")).name == "cuda-sgd"
