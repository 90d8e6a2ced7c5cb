"""Tampered, damaged and hostile model folders: refused on load with one line, never a wrong answer.

Two kinds of attacker: a careless one edits model.json by hand (the checksum catches it), a careful one also
recomputes every checksum (the consistency checks catch what would give wrong answers: non-finite weights,
shapes against the config, id maps against the tables, a config whose tables would not fit in memory).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from _checks import assert_one_line_exit_2
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from deepmf import io
from deepmf.errors import DeepMFError, ModelFormatError
from deepmf.recommender import Recommender


def _edit(folder: Path, meta_edit: Callable[[dict[str, Any]], None] | None = None,
          tensor_edit: Callable[[dict[str, torch.Tensor]], None] | None = None, resign: bool = True) -> None:
    meta = json.loads((folder / io.META_FILE).read_text())
    if tensor_edit is not None:
        tensors = load_safetensors((folder / io.WEIGHTS_FILE).read_bytes())
        tensor_edit(tensors)
        blob = save_safetensors(tensors)
        (folder / io.WEIGHTS_FILE).write_bytes(blob)
        meta["weights_sha256"] = hashlib.sha256(blob).hexdigest()
    if meta_edit is not None:
        meta_edit(meta)
    if resign:
        meta["checksum"] = io.canonical_checksum(meta)
    (folder / io.META_FILE).write_text(json.dumps(meta))


def _refused(folder: Path, match: str, kind: type[DeepMFError] = ModelFormatError) -> None:
    with pytest.raises(kind, match=match) as info:
        Recommender.load(folder)
    assert "\n" not in str(info.value)


def _swap_first_two(ids: list[Any]) -> None:
    ids[0], ids[1] = ids[1], ids[0]


# ---- the careless attacker: edits without the checksum ---------------------------------------------------------
@pytest.mark.parametrize("edit", [
    lambda m: _swap_first_two(m["users"]["ids"]),  # predict/rated would answer for the wrong user
    lambda m: _swap_first_two(m["items"]["ids"]),
    lambda m: m["scale"].update(min=2.0),  # would clip every prediction
    lambda m: m["scale"].update(max=4.0),
    lambda m: m["model"]["config"].update(global_mean=4.5),
    lambda m: m["item_table"].update(titles=["x"] * len(m["item_table"]["titles"])) if m["item_table"] else
    m["summary"].update(epochs_run=99),
], ids=["users swapped", "items swapped", "scale min", "scale max", "global mean", "titles"])
def test_hand_edits_of_model_json_are_caught_by_the_checksum(model_dir: Path, edit) -> None:
    _edit(model_dir, meta_edit=edit, resign=False)
    _refused(model_dir, "do not match its checksum")


def test_a_removed_checksum_is_refused(model_dir: Path) -> None:
    _edit(model_dir, meta_edit=lambda m: m.pop("checksum"), resign=False)
    _refused(model_dir, "'checksum' is missing")


@pytest.mark.parametrize("cut", [1, 100, 0.5], ids=["last byte", "last 100 bytes", "half"])
def test_a_truncated_model_json_is_refused(model_dir: Path, cut: float) -> None:
    text = (model_dir / io.META_FILE).read_bytes()
    keep = int(len(text) * cut) if isinstance(cut, float) else len(text) - cut
    (model_dir / io.META_FILE).write_bytes(text[:keep])
    _refused(model_dir, "invalid JSON|checksum")


def test_a_model_json_that_is_not_utf8_is_refused(model_dir: Path) -> None:
    (model_dir / io.META_FILE).write_bytes(b'{"format": "deepmf-model", "x": "\xff\xfe"}')
    _refused(model_dir, "invalid JSON")


def test_a_deeply_nested_model_json_is_refused(model_dir: Path) -> None:
    (model_dir / io.META_FILE).write_text("[" * 200_000 + "]" * 200_000)
    _refused(model_dir, "invalid JSON")


def test_a_weights_file_replaced_by_a_link_is_refused(model_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.bin"
    other.write_bytes(b"\x00" * 64)
    (model_dir / io.WEIGHTS_FILE).unlink()
    (model_dir / io.WEIGHTS_FILE).symlink_to(other)
    _refused(model_dir, "checksum")


def test_a_format_1_folder_asks_to_retrain_and_can_be_replaced(model_dir: Path, trained) -> None:
    _edit(model_dir, meta_edit=lambda m: m.update(format_version=1))
    _refused(model_dir, "model format 1 .* retrain")
    trained.save(model_dir)  # an old deepmf folder is still deepmf's to replace
    assert Recommender.load(model_dir).model_name == "mf"


# ---- the careful attacker: recomputes every checksum -----------------------------------------------------------
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"])
def test_non_finite_weights_are_refused(model_dir: Path, value: float) -> None:
    def poison(tensors: dict[str, torch.Tensor]) -> None:
        tensors["model.user_factors.weight"][0, 0] = value

    _edit(model_dir, tensor_edit=poison)
    _refused(model_dir, "NaN or infinite")


@pytest.mark.parametrize(("factors", "kind", "match"), [
    (1e30, ModelFormatError, "factors must be a positive integer"),
    (10**30, ModelFormatError, "more than the .* of weights its file holds"),
    (10_000_000, ModelFormatError, "more than the .* of weights its file holds"),
    (-3, ModelFormatError, "factors must be a positive integer"),
    ("64", ModelFormatError, "factors must be a positive integer"),
], ids=["1e30", "10**30", "1e7", "negative", "string"])
def test_absurd_factors_give_one_line_before_allocating(model_dir: Path, factors: Any, kind: type,
                                                        match: str) -> None:
    _edit(model_dir, meta_edit=lambda m: m["model"]["config"].update(factors=factors))
    _refused(model_dir, match, kind)


def test_nan_written_into_model_json_is_refused(model_dir: Path) -> None:
    meta = json.loads((model_dir / io.META_FILE).read_text())
    meta["scale"]["max"] = float("nan")
    (model_dir / io.META_FILE).write_text(json.dumps(meta))  # Python writes NaN; strict JSON has none
    _refused(model_dir, "checksum")


def test_a_huge_id_map_is_refused(model_dir: Path) -> None:
    _edit(model_dir, meta_edit=lambda m: m["users"].update(ids=list(range(1_000_000))))
    _refused(model_dir, "id maps have 1000000 users")


@pytest.mark.parametrize(("edit", "match"), [
    (lambda m: m["scale"].update(min=5.0, max=1.0), "invalid rating scale"),
    (lambda m: m["users"]["ids"].append(m["users"]["ids"][0]), "duplicate raw ids"),
    (lambda m: m["users"].update(ids=[m["users"]["ids"][0]] * len(m["users"]["ids"])), "."),
    (lambda m: m["model"]["config"].update(n_users=10**12), "needs at least|config needs"),
    (lambda m: m["model"].update(name="../../etc/passwd"), "unknown model"),
    (lambda m: m["train_config"].update(lr=-1.0), "learning rate must be positive"),
], ids=["scale inverted", "id map longer", "duplicate ids", "n_users huge", "model name path", "lr negative"])
def test_inconsistent_values_are_refused(model_dir: Path, edit, match: str) -> None:
    _edit(model_dir, meta_edit=edit)
    with pytest.raises(DeepMFError, match=match) as info:
        Recommender.load(model_dir)
    assert "\n" not in str(info.value)


def test_the_cli_refuses_a_tampered_model_in_one_line(run, model_dir: Path) -> None:
    _edit(model_dir, meta_edit=lambda m: _swap_first_two(m["users"]["ids"]), resign=False)
    assert_one_line_exit_2(run("recommend", model_dir, "1"), "checksum")
    assert_one_line_exit_2(run("predict", model_dir, "1", "1"), "checksum")


@pytest.mark.parametrize(("edit", "what"), [
    (lambda state: state.update(history=5), "history not a list"),  # was: TypeError traceback
    (lambda state: state.update(history=[{"epoch": 1}]), "an epoch record missing its fields"),
    (lambda state: state.update(state={"__dict__": []}), "engine and trainer state emptied"),
], ids=lambda value: value if isinstance(value, str) else "")
def test_a_damaged_checkpoint_is_refused_on_resume(run, ratings_csv: Path, tmp_path: Path, edit, what: str) -> None:
    out = tmp_path / "run"
    flags = ("--factors", "3", "--epochs", "3", "--patience", "0", "--threads", "1", "--quiet")
    assert run("train", ratings_csv, "--out", out, *flags)[0] == 0
    (out / io.META_FILE).unlink()
    (out / io.WEIGHTS_FILE).unlink()  # as if killed before the final save
    state_file = out / "checkpoint" / "state.json"
    state = json.loads(state_file.read_text())
    edit(state)
    state_file.write_text(json.dumps(state))
    assert_one_line_exit_2(run("train", ratings_csv, "--out", out, "--resume", *flags), "damaged checkpoint")
