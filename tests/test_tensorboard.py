"""``deepmf train --tensorboard DIR`` (CPU): the per-epoch history as TensorBoard scalars."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from deepmf.testing.conformance import conformance_data


@pytest.fixture()
def ratings_csv(tmp_path: Path) -> Path:
    path = tmp_path / "ratings.csv"
    conformance_data().to_frame().to_csv(path, index=False)
    return path


def test_train_writes_each_epoch_for_tensorboard(run, ratings_csv: Path, tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    code, out, _ = run("train", ratings_csv, "--model", "deepmf", "--epochs", "3", "--patience", "0",
                       "--val-fraction", "0.1", "--tensorboard", tmp_path / "tb", "--quiet", "--json")
    assert code == 0
    history = json.loads(out)["history"]
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    train = events.Scalars("rmse/train")
    assert [e.step for e in train] == [1, 2, 3]
    assert [e.value for e in train] == pytest.approx([r["train_rmse"] for r in history], rel=1e-6)
    assert [e.value for e in events.Scalars("rmse/validation")] == pytest.approx(
        [r["val_rmse"] for r in history], rel=1e-6)
    assert {"speed/ratings_per_second", "time/epoch_seconds"} <= set(events.Tags()["scalars"])


def test_tensorboard_missing_is_one_line(run, monkeypatch, ratings_csv: Path, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    code, _, err = run("train", ratings_csv, "--epochs", "1", "--tensorboard", tmp_path / "tb", "--quiet")
    assert code == 2 and "pip install 'deepmf[tensorboard]'" in err and err.count("\n") == 1
