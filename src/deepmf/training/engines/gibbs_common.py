"""What the two Gibbs samplers (numba on the CPU, gibbs.py; batched torch, gibbs_torch.py) share: the priors,
the options they refuse, the hyperparameter draw, which sweeps are kept, and how a sample reaches the model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from deepmf.errors import ConfigError
from deepmf.models.bayes import SECONDS_PER_DAY

if TYPE_CHECKING:
    from deepmf.data.ratings import Ratings
    from deepmf.models.bayes import BayesMF
    from deepmf.training.config import TrainConfig

# Normal-Gamma hyperprior (alpha0, beta0, gamma0, mu0) as in libFM / myFM: weak, and centred on zero.
PRIOR_SHAPE = 1.0
PRIOR_RATE = 1.0
PRIOR_MEAN_STRENGTH = 1.0
FACTOR_GROUPS = ("user_factors", "user_implicit", "item_factors", "item_implicit", "day_factors")
BIAS_GROUPS = ("user_bias", "item_bias", "day_bias")


def rating_days(timestamps: np.ndarray, first_day: int, n_days: int) -> np.ndarray:
    """Day index of each timestamp relative to ``first_day``, clipped into the ``n_days`` training days."""
    return np.clip(timestamps // SECONDS_PER_DAY - first_day, 0, n_days - 1).astype(np.int32)


def check_sampler_options(model: BayesMF, train: Ratings, config: TrainConfig) -> None:
    """Refuse what no Gibbs sampler can run: another model, no kept sample, or dates without timestamps.

    Raises:
        ConfigError: with the reason.
    """
    if getattr(model, "name", "") != "bayes":
        raise ConfigError(f"the gibbs engines sample Bayesian MF only, not {getattr(model, 'name', model)!r}")
    cfg = model.config
    if cfg.burn_in >= config.epochs:
        raise ConfigError(f"burn_in ({cfg.burn_in}) must be below the number of sweeps (epochs, "
                          f"{config.epochs}), or no sample is ever kept")
    if cfg.date and train.timestamps is None:
        raise ConfigError("the date feature needs rating timestamps: these ratings have none (set date=False)")


def draw_hyperparameters(rng: np.random.Generator, n: int, mean: np.ndarray,
                         spread: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(precision, mean) per dimension from a group's Normal-Gamma posterior, given its ``n`` rows' ``mean``
    and summed squared deviation ``spread`` per dimension (both samplers draw them here, on the host)."""
    shape = PRIOR_SHAPE + 0.5 * n
    rate = PRIOR_RATE + 0.5 * (spread + PRIOR_MEAN_STRENGTH * n * mean**2 / (PRIOR_MEAN_STRENGTH + n))
    precision = rng.gamma(shape, 1.0 / rate)
    strength = PRIOR_MEAN_STRENGTH + n
    spread_of_mean = 1.0 / np.sqrt(strength * precision)
    return precision, n * mean / strength + rng.standard_normal(len(mean)) * spread_of_mean


def sample_slot(sweeps: int, burn_in: int, thin: int, kept: int, samples: int) -> int | None:
    """The model slot the sample of sweep ``sweeps`` (0-based) goes to, or None when it is not kept.

    During burn-in every sample replaces slot 0 (so the model shows the chain's state); after it every
    ``thin``-th is averaged in as sample number ``kept``, until the ``samples`` slots are full (a run resumed
    with more epochs than planned).
    """
    after = sweeps - burn_in
    if after < 0:
        return 0
    if after % thin != 0 or kept >= samples:
        return None
    return kept


def sample_tables(state: dict[str, Any], user_vecs: Any, item_vecs: Any, day_mix: Any = None,
                  day_bias_mix: Any = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(means, vectors) of one sample for ``BayesMF.add_sample``, numpy arrays or torch tensors alike.

    ``day_mix``/``day_bias_mix`` (the date feature's per-user mix of day vectors and of day terms) fold into the
    user's vector and bias and are kept beside them; None without the date feature.
    """
    means = {"global_bias": state["mu"], "user_bias": state["user_bias"], "item_bias": state["item_bias"]}
    vectors = {"user_factors": user_vecs, "item_factors": item_vecs}
    if day_mix is not None:
        means.update(user_bias=state["user_bias"] + day_bias_mix, day_bias=state["day_bias"],
                     user_day_bias=day_bias_mix)
        vectors.update(user_factors=user_vecs + day_mix, day_factors=state["day_factors"], user_day_mix=day_mix)
    return means, vectors
