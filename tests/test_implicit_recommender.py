"""The Recommender with an implicit-feedback model (CPU): raw scores, ranking-only evaluation that agrees with
the Trainer's validation code, the labelled sampled protocol, popularity for cold users, the saved feedback."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepmf import io
from deepmf.data.splits import parse_split
from deepmf.errors import ModelFormatError
from deepmf.evaluation.topk import HeldOutRanking
from deepmf.experiment import run_experiment, train_config_for
from deepmf.recommender import Recommender
from deepmf.testing.conformance import implicit_conformance_data


@pytest.fixture(scope="module")
def fitted():
    data = implicit_conformance_data()
    split = parse_split("user:0.2", data, seed=0)[0]
    config = train_config_for("ials", {"epochs": 8, "threads": 1})
    result = run_experiment(data, split, "ials", {"factors": 8}, config, progress=False)
    return data, split, result.recommender


def test_predictions_are_the_models_raw_scores(fitted) -> None:
    data, _, rec = fitted
    users, items = np.repeat(np.arange(10), data.n_items), np.tile(np.arange(data.n_items), 10)
    with torch.no_grad():
        raw = rec.model(torch.from_numpy(users), torch.from_numpy(items)).numpy()
    predicted = rec.predict_many(rec.user_ids.raw(users), rec.item_ids.raw(items))
    np.testing.assert_allclose(predicted, raw, rtol=1e-6)
    assert raw.max() > 1.0 or raw.min() < 0.0  # outside the 0..1 "scale": nothing clipped them


def test_evaluation_ranks_every_held_out_interaction_as_the_trainer_does(fitted) -> None:
    _, split, rec = fitted
    metrics = rec.evaluate(split.test, k=10).metrics
    assert {"rmse", "mae", "relevant_threshold"}.isdisjoint(metrics) and metrics["protocol"] == "full"
    reference = HeldOutRanking(split.train, split.test, 10)(rec.model)
    for key in ("precision", "recall", "ndcg", "map", "hit_rate", "coverage"):
        assert metrics[key] == pytest.approx(reference[key]), key
    assert metrics["n_ranked_users"] == reference["n_users"] == rec.n_users


def test_sampled_protocol_is_easier_labelled_and_reproducible(fitted) -> None:
    _, split, rec = fitted
    full = rec.evaluate(split.test, k=10).metrics
    sampled = rec.evaluate(split.test, k=10, protocol="sampled").metrics
    assert sampled["protocol"] == "sampled" and sampled["negatives"] == 99
    assert sampled["n_cases"] == len(split.test)
    assert sampled["hit_rate"] >= full["recall"]
    assert rec.evaluate(split.test, k=10, protocol="sampled").metrics == sampled


def test_cold_users_get_the_popularity_list(fitted) -> None:
    *_, rec = fitted
    top = rec.recommend(-1, n=5, cold_start="bias")
    counts = rec.seen.item_counts()
    assert top.attrs["cold_start"] == "user"
    # The five highest training counts (ties may be listed in any order).
    listed = counts[rec.item_ids.indices(top["item"].to_numpy())]
    assert sorted(listed, reverse=True) == sorted(counts, reverse=True)[:5]


def test_saved_feedback_round_trips_and_is_checked(fitted, tmp_path: Path) -> None:
    *_, rec = fitted
    folder = rec.save(tmp_path / "model")
    loaded = Recommender.load(folder)
    assert (loaded.feedback, loaded.positive, loaded.scores_only) == ("implicit", None, True)
    meta_path = folder / "model.json"
    meta = json.loads(meta_path.read_text())
    meta["feedback"] = {"kind": "explicit", "positive": None}
    meta["checksum"] = io.canonical_checksum(meta)  # a careful tamperer: the checksum alone would catch it
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelFormatError, match="scores implicit feedback"):
        Recommender.load(folder)
