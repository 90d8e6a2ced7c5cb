"""Saved model folders: exact round trips, and every kind of damaged folder refused with one clear message."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from deepmf import io
from deepmf.data.ratings import ItemTable, Ratings
from deepmf.errors import ModelFormatError, OutputError
from deepmf.models.registry import create_model
from deepmf.recommender import Evaluation, Recommender, SeenRatings
from deepmf.training.config import TrainConfig


def _recommender(string_ids: bool = False) -> Recommender:
    rng = np.random.default_rng(3)
    users, items = np.meshgrid(np.arange(6), np.arange(8), indexing="ij")
    keep = rng.random(users.size) < 0.6
    frame = pd.DataFrame({"user": users.ravel()[keep], "item": items.ravel()[keep],
                          "rating": rng.integers(1, 6, int(keep.sum())).astype(np.float32)})
    if string_ids:
        frame["user"] = "u" + frame["user"].astype(str)
        frame["item"] = "film-" + frame["item"].astype(str)
    data = Ratings.from_frame(frame)
    genres = rng.random((data.n_items, 2)) < 0.5
    titles = np.array([f"Title {i}" for i in range(data.n_items)], dtype=object)
    data = Ratings(data.users, data.items, data.ratings, data.user_ids, data.item_ids, data.scale,
                   item_table=ItemTable(titles, genres, ("Drama", "Horror")))
    model = create_model("mf", data, factors=4)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)))
    history = [{"epoch": 1, "train_rmse": 1.2, "val_rmse": 1.3, "seconds": 0.1},
               {"epoch": 2, "train_rmse": 1.0, "val_rmse": float("nan"), "seconds": 0.1}]
    evaluation = Evaluation({"rmse": 0.9, "mae": 0.7, "k": 10}, np.array([4.0, 3.0], dtype=np.float32),
                            np.array([3.5, 3.1], dtype=np.float32))
    return Recommender(model, "mf", data.user_ids, data.item_ids, data.scale, data.item_table,
                       SeenRatings.from_ratings(data), TrainConfig(epochs=2, lr=0.01), history,
                       model_options={"factors": 4}, summary={"engine": "torch", "epochs_run": 2},
                       evaluation=evaluation)


@pytest.fixture()
def saved(tmp_path: Path) -> tuple[Recommender, Path]:
    rec = _recommender()
    return rec, rec.save(tmp_path / "model")


@pytest.mark.parametrize("string_ids", [False, True])
def test_round_trip_answers_identically(tmp_path: Path, string_ids: bool) -> None:
    rec = _recommender(string_ids)
    folder = rec.save(tmp_path / "m")
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]
    back = Recommender.load(folder)
    users = rec.user_ids.raw(np.arange(rec.n_users))
    items = rec.item_ids.raw(np.arange(rec.n_items))
    grid_u, grid_i = np.repeat(users, len(items)), np.tile(items, len(users))
    np.testing.assert_array_equal(back.predict_many(grid_u, grid_i, cold_start="bias"),
                                  rec.predict_many(grid_u, grid_i, cold_start="bias"))
    pd.testing.assert_frame_equal(back.recommend_many(users, n=3), rec.recommend_many(users, n=3))
    pd.testing.assert_frame_equal(back.similar_items(items[0], n=3), rec.similar_items(items[0], n=3))
    assert back.user_ids.kind == ("str" if string_ids else "int")
    assert back.item_table.titles.tolist() == rec.item_table.titles.tolist()
    np.testing.assert_array_equal(back.item_table.genres, rec.item_table.genres)
    assert back.item_table.genre_names == ("Drama", "Horror")
    assert back.train_config == rec.train_config
    assert back.history[0] == rec.history[0] and back.history[1]["val_rmse"] is None  # NaN stored as null
    assert back.summary == rec.summary and back.model_options == {"factors": 4}
    np.testing.assert_array_equal(back.evaluation.predicted, rec.evaluation.predicted)
    assert back.evaluation.metrics["rmse"] == 0.9
    np.testing.assert_array_equal(back.seen.indptr, rec.seen.indptr)


def test_saving_replaces_an_existing_model_folder_whole(saved: tuple[Recommender, Path]) -> None:
    rec, folder = saved
    (folder / "checkpoint").mkdir()
    (folder / "checkpoint" / "state.json").write_text('{"format": "deepmf-checkpoint"}')
    rec.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["model.json", "model.safetensors"]
    assert not list(folder.parent.glob(".model*"))  # no temp folders left behind
    with pytest.raises(OutputError, match="already holds a deepmf model"):
        rec.save(folder, overwrite=False)


def test_saving_never_replaces_a_folder_holding_a_users_file(saved: tuple[Recommender, Path]) -> None:
    rec, folder = saved
    (folder / "notes.txt").write_text("mine")
    before = sorted(p.name for p in folder.iterdir())
    with pytest.raises(OutputError, match=r"notes\.txt, which deepmf did not write"):
        rec.save(folder)
    assert sorted(p.name for p in folder.iterdir()) == before and (folder / "notes.txt").read_text() == "mine"


def _resign(folder: Path, meta_edit: Callable[[dict[str, Any]], None] | None = None,
            tensor_edit: Callable[[dict[str, torch.Tensor]], None] | None = None) -> None:
    """Edit a saved folder *consistently* (checksum updated), as a careful tamperer would."""
    meta = json.loads((folder / io.META_FILE).read_text())
    tensors = load_safetensors((folder / io.WEIGHTS_FILE).read_bytes())
    if tensor_edit:
        tensor_edit(tensors)
    blob = save_safetensors(tensors)
    (folder / io.WEIGHTS_FILE).write_bytes(blob)
    meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    if meta_edit:
        meta_edit(meta)
    meta["checksum"] = io.canonical_checksum(meta)
    (folder / io.META_FILE).write_text(json.dumps(meta))


def _refused(folder: Path, match: str) -> None:
    with pytest.raises(ModelFormatError, match=match) as info:
        Recommender.load(folder)
    assert "\n" not in str(info.value)


def test_missing_folder_or_file_path(tmp_path: Path) -> None:
    _refused(tmp_path / "nothing", "does not exist")
    (tmp_path / "file").write_text("x")
    _refused(tmp_path / "file", "is not a model folder")


@pytest.mark.parametrize("name", [io.META_FILE, io.WEIGHTS_FILE])
def test_missing_file(saved: tuple[Recommender, Path], name: str) -> None:
    _, folder = saved
    (folder / name).unlink()
    _refused(folder, f"{name} is missing")


def test_truncated_tensor_file(saved: tuple[Recommender, Path]) -> None:
    _, folder = saved
    path = folder / io.WEIGHTS_FILE
    path.write_bytes(path.read_bytes()[:-40])
    _refused(folder, "do not match the checksum")


def test_replaced_tensor_values_are_detected(saved: tuple[Recommender, Path]) -> None:
    _, folder = saved
    tensors = load_safetensors((folder / io.WEIGHTS_FILE).read_bytes())
    tensors["model.user_factors.weight"] = tensors["model.user_factors.weight"] + 1
    (folder / io.WEIGHTS_FILE).write_bytes(save_safetensors(tensors))
    _refused(folder, "checksum")


def test_garbage_tensor_file_with_matching_checksum(saved: tuple[Recommender, Path]) -> None:
    _, folder = saved
    blob = b"\xff" * 64
    (folder / io.WEIGHTS_FILE).write_bytes(blob)
    meta = json.loads((folder / io.META_FILE).read_text())
    meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    meta["checksum"] = io.canonical_checksum(meta)
    (folder / io.META_FILE).write_text(json.dumps(meta))
    _refused(folder, "unreadable tensor file")


@pytest.mark.parametrize(("text", "match"), [("{\"format\": ", "invalid JSON"), ("[1, 2]", "JSON object"),
                                             ("\udcff", "invalid JSON")])
def test_broken_json(saved: tuple[Recommender, Path], text: str, match: str) -> None:
    _, folder = saved
    (folder / io.META_FILE).write_bytes(text.encode("utf-8", "surrogateescape"))
    _refused(folder, match)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda m: m.update(format_version=99), "model format 99 .* not supported"),
    (lambda m: m.update(format_version="1"), "format_version missing or not an integer"),
    (lambda m: m.pop("format"), "not a deepmf model file"),
    (lambda m: m.pop("model"), "required key 'model' is missing"),
    (lambda m: m["model"].update(name="gpt"), "unknown model 'gpt'"),
    (lambda m: m["model"]["config"].update(factors=5), "tensor 'user_factors.weight' .* config needs"),
    (lambda m: m["model"]["config"].update(n_users=2), "config needs"),
    (lambda m: m["model"]["config"].update(bogus=1), "invalid config"),
    (lambda m: m["users"]["ids"].pop(), "id maps have 5 users"),
    (lambda m: m["users"].update(kind="float"), "kind must be 'int' or 'str'"),
    (lambda m: m["items"].update(ids="1,2,3"), "'ids' should be list"),
    (lambda m: m["scale"].update(min=9), "invalid rating scale"),
    (lambda m: m["item_table"]["titles"].pop(), "titles/genres do not match"),
    (lambda m: m.update(history=[1, 2]), "history must be a list of objects"),
    (lambda m: m["train_config"].update(lr=-1), "learning rate must be positive"),
])
def test_edited_json_is_refused(saved: tuple[Recommender, Path], edit, match: str) -> None:
    _, folder = saved
    _resign(folder, meta_edit=edit)
    _refused(folder, match)


@pytest.mark.parametrize(("edit", "match"), [
    (lambda t: t.pop("model.item_bias.weight"), "missing: item_bias.weight"),
    (lambda t: t.update({"model.extra": torch.zeros(2)}), "unexpected: extra"),
    (lambda t: t.update({"model.global_bias": torch.tensor(3, dtype=torch.int64)}), "global_bias"),
    (lambda t: t.update({"seen.items": t["seen.items"] + 100}), "training ratings do not match"),
    (lambda t: t.pop("seen.indptr"), "'seen.indptr' is missing"),
    (lambda t: t.pop("evaluation.actual"), "evaluation tensors"),
    (lambda t: t.update({"items.genres": torch.zeros(3, 3, dtype=torch.uint8)}), "titles/genres"),
])
def test_inconsistent_tensors_are_refused(saved: tuple[Recommender, Path], edit, match: str) -> None:
    _, folder = saved
    _resign(folder, tensor_edit=edit)
    _refused(folder, match)
