"""The batched torch Gibbs sampler ("gibbs-torch"): its batched row draw and its joint implicit-row draw have the
right distribution, conjugate gradients solve, the chain resumes exactly, and its posterior mean predicts as
well as the numba sampler's.

Device: the torch sampler runs on any device; these tests are marked ``cuda`` and use the ``gpu`` fixture (the
GPU where present, else the CPU, where the same torch code runs).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from deepmf.data.ratings import Ratings
from deepmf.data.splits import random_split
from deepmf.data.synthetic import synthetic_ratings
from deepmf.experiment import run_experiment, train_config_for
from deepmf.models.bayes import BayesMF
from deepmf.training.config import TrainConfig
from deepmf.training.engines.gibbs_torch import CG_TOLERANCE, TorchGibbsEngine, _conjugate_gradients
from deepmf.training.trainer import Trainer

pytestmark = pytest.mark.cuda


@pytest.fixture(scope="module")
def lowrank() -> Ratings:
    return synthetic_ratings("lowrank", n_users=60, n_items=50, rank=2, n_observed=1500, noise=0.1, seed=1)


def _engine(data: Ratings, device: torch.device, epochs: int = 6, seed: int = 0, **options) -> TorchGibbsEngine:
    model = BayesMF.from_data(data, **{"rank": 3, "samples": 3, "burn_in": 2, "date": False, **options})
    return TorchGibbsEngine(model, data, TrainConfig(epochs=epochs, seed=seed), device)


def test_batched_row_draw_has_the_conditional_mean_and_covariance() -> None:
    prec = torch.tensor([[4.0, 1.0, 0.5], [1.0, 3.0, -1.0], [0.5, -1.0, 2.0]], dtype=torch.float64)
    rhs = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    n = 100_000
    noise = torch.randn((n, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    samples = TorchGibbsEngine._draw(prec.expand(n, 3, 3), rhs.expand(n, 3), noise).numpy()
    np.testing.assert_allclose(samples.mean(axis=0), np.linalg.solve(prec, rhs), atol=0.01)
    np.testing.assert_allclose(np.cov(samples.T), np.linalg.inv(prec), atol=0.01)


def test_conjugate_gradients_solve_a_block_system() -> None:
    generator = torch.Generator().manual_seed(1)
    basis = torch.randn((12, 12), generator=generator, dtype=torch.float64)
    matrix = basis @ basis.T + 12 * torch.eye(12, dtype=torch.float64)
    rhs = torch.randn((4, 3), generator=generator, dtype=torch.float64)

    def apply(x):
        return (matrix @ x.reshape(-1)).reshape(4, 3)

    # With the exact inverse as preconditioner the first step lands on the solution.
    inverse = torch.linalg.inv(matrix)
    exact = _conjugate_gradients(apply, lambda r: (inverse @ r.reshape(-1)).reshape(4, 3), rhs,
                                 torch.zeros_like(rhs))
    truth = torch.linalg.solve(matrix, rhs.reshape(-1))
    torch.testing.assert_close(exact.reshape(-1), truth)
    # Unpreconditioned, it stops once the error in the matrix's norm is below the tolerance's share.
    error = _conjugate_gradients(apply, lambda r: r, rhs, torch.zeros_like(rhs)).reshape(-1) - truth
    assert float(error @ matrix @ error) ** 0.5 <= CG_TOLERANCE * 12**0.5


@pytest.mark.parametrize("side", ["user", "item"])
def test_implicit_perturbation_has_the_conditional_precision_as_covariance(side: str) -> None:
    """A joint draw solves P y = P mean + noise: it is N(mean, P^-1) exactly when the noise is N(0, P)."""
    data = synthetic_ratings("lowrank", n_users=7, n_items=6, rank=2, n_observed=25, noise=0.1, seed=3)
    engine = _engine(data, torch.device("cpu"), rank=2)
    engine.train_epoch(1)
    owners, members, other, scale = ((engine.users, engine.items, engine.item_vecs, engine.user_scale)
                                     if side == "user" else
                                     (engine.items, engine.users, engine.user_vecs, engine.item_scale))
    group = f"{side}_implicit"
    n_owners = scale.shape[0]
    gram, grad = engine._gram_and_gradient(owners, n_owners, other, members, engine.state["day_factors"],
                                           engine.days, engine.residual)
    problem = engine._implicit_problem(group, owners, members, other, scale, gram, grad)
    rows = engine.state[group].shape
    dimension = rows[0] * rows[1]
    basis = torch.eye(dimension, dtype=torch.float64)
    dense = torch.stack([problem.apply(basis[d].reshape(rows)).reshape(-1) for d in range(dimension)])
    torch.testing.assert_close(dense, dense.T)  # symmetric, as a precision must be
    assert torch.linalg.eigvalsh(dense).min() > 0
    draws = torch.stack([problem.perturbation().reshape(-1) for _ in range(20_000)]).numpy()
    np.testing.assert_allclose(draws.mean(axis=0), 0.0, atol=0.05 * float(dense.diagonal().max()) ** 0.5)
    np.testing.assert_allclose(np.cov(draws.T), dense.numpy(), atol=0.05 * float(dense.diagonal().max()))


def test_resume_continues_the_same_chain(gpu, lowrank, tmp_path: Path) -> None:
    options = {"rank": 3, "samples": 3, "burn_in": 1, "date": False}
    config = TrainConfig(engine="gibbs-torch", epochs=4, seed=3, device=str(gpu))

    def fresh() -> BayesMF:
        return BayesMF.from_data(lowrank, **options)

    straight = fresh()
    Trainer(config, progress=False).fit(straight, lowrank)

    class Interrupt(Exception):
        pass

    def stop_after_two(record) -> None:
        if record.epoch == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        Trainer(config, checkpoint_dir=tmp_path, progress=False, on_epoch=stop_after_two).fit(fresh(), lowrank)
    resumed = fresh()
    result = Trainer(config, checkpoint_dir=tmp_path, resume=True, progress=False).fit(resumed, lowrank)
    assert result.resumed_from == 2 and result.engine == "gibbs-torch"
    # Same random numbers either way. On the CPU the sums run in a fixed order, so the chains match to the last
    # bits; a GPU's atomic scatter-adds sum in any order, and rounding differences then move the
    # conjugate-gradient draws by a tiny fraction of their spread.
    tolerance = {} if gpu.type == "cpu" else {"rtol": 1e-3, "atol": 1e-3}
    for name, value in straight.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[name], value, msg=name, **tolerance)


def test_posterior_mean_predicts_as_well_as_the_numba_samplers(gpu, lowrank) -> None:
    split = random_split(lowrank, 0.2, seed=0)
    rmse = {}
    for engine, device in (("gibbs", "cpu"), ("gibbs-torch", str(gpu))):
        config = train_config_for("bayes", {"epochs": 40, "engine": engine, "device": device, "threads": 1})
        result = run_experiment(lowrank, split, "bayes", {"rank": 4, "burn_in": 10, "date": False}, config,
                                progress=False)
        assert result.to_dict()["engine"] == engine
        rmse[engine] = result.metrics["rmse"]
    spread = float(np.std(split.test.ratings))
    assert rmse["gibbs-torch"] < 0.3 * spread  # the numba sampler's own bound in test_bayes.py
    assert abs(rmse["gibbs-torch"] - rmse["gibbs"]) < 0.05 * spread, rmse


def test_date_feature_and_predict_at_run(gpu) -> None:
    rng = np.random.default_rng(0)
    cells = rng.choice(40 * 30, 600, replace=False)
    frame = pd.DataFrame({"user": cells // 30, "item": cells % 30, "rating": rng.integers(1, 6, 600),
                          "timestamp": 1_000_000_000 + rng.integers(0, 20, 600) * 86_400 + 3_600})
    data = Ratings.from_frame(frame, time_col="timestamp")
    engine = _engine(data, gpu, date=True)
    for epoch in range(1, 5):
        assert 0 < engine.train_epoch(epoch) < 2.0
    model = engine.model
    users = torch.arange(5, device=gpu)
    plain = model.predict(users, users)
    at_first_day = model.predict_at(users, users, torch.full((5,), 1_000_000_000, device=gpu))
    assert torch.isfinite(plain).all() and torch.isfinite(at_first_day).all()
    assert not torch.allclose(plain, at_first_day)  # the day's own terms are used
