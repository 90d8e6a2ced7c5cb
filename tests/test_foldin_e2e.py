"""Fold-in on real data (issue 14's protocol, CPU): 50 users of ML-100K u1.base held out of training entirely,
each folded in from half of his ratings; RMSE on the other half within 0.02 of a model retrained with those
halves, and clearly better than the bias fallback. The figures are in BENCHMARKS.md (bench/foldin.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepmf.data.loading import load
from deepmf.data.splits import parse_split
from deepmf.evaluation.foldin import check_fold_in


@pytest.fixture(scope="module")
def u1_base(ml100k_dir: Path):
    return parse_split("u1", load(ml100k_dir))[0].train


@pytest.mark.slow
@pytest.mark.parametrize("model", ["mf", "svdpp", "bayes"])  # the others: bench/foldin.py
def test_fold_in_is_as_good_as_retraining(u1_base, model: str) -> None:
    result = check_fold_in(u1_base, model, n_users=50, seed=0)
    assert result.n_scored > 2000
    assert result.fold_in <= result.retrained + 0.02, result
    assert result.fold_in <= result.bias - 0.03, result
