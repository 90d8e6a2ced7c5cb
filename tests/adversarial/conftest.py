"""Fixtures of the adversarial suite (the checks themselves are in ``_checks.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from _checks import snapshot


@pytest.fixture()
def unchanged() -> Callable[[Path], Callable[[], None]]:
    """``check = unchanged(folder)`` before the attack, ``check()`` after: the tree is exactly as it was."""

    def take(root: Path) -> Callable[[], None]:
        before = snapshot(root)

        def check() -> None:
            assert snapshot(root) == before

        return check

    return take


@pytest.fixture(scope="session")
def ratings_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small explicit-ratings CSV (30 users x 40 items, about half rated, ratings 1..5)."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(11)
    users, items = np.meshgrid(np.arange(1, 31), np.arange(1, 41), indexing="ij")
    keep = rng.random(users.size) < 0.5
    frame = pd.DataFrame({"user": users.ravel()[keep], "item": items.ravel()[keep],
                          "rating": rng.integers(1, 6, int(keep.sum()))})
    path = tmp_path_factory.mktemp("data") / "ratings.csv"
    frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def trained(ratings_csv: Path):
    """A small trained MF Recommender (torch engine, deterministic)."""
    import deepmf

    data = deepmf.load(str(ratings_csv))
    return deepmf.fit(data, model="mf", factors=3, epochs=2, threads=1, engine="torch")


@pytest.fixture()
def model_dir(trained, tmp_path: Path) -> Path:
    """A fresh copy of the trained model's folder, safe to tamper with."""
    return trained.save(tmp_path / "model")
