"""The demo (CPU): offline fallback to generated MovieLens-shaped data (faked network; a small version fast, the
full-size one slow) and the real ML-100K run (slow). Both models' lists are shown side by side."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from deepmf import demo
from deepmf.cli.app import _register, app
from deepmf.cli.common import run_app
from deepmf.errors import DownloadError
from deepmf.recommender import Recommender


@pytest.fixture()
def no_data_no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """No ML-100K anywhere and no network: the download fails as it would offline."""
    import deepmf.data.download
    import deepmf.data.loading

    def unreachable(*args: object, **kwargs: object) -> None:
        raise DownloadError("network unreachable")

    monkeypatch.delenv("DEEPMF_DATA", raising=False)
    monkeypatch.setattr(deepmf.data.loading, "is_present", lambda *args, **kwargs: False)
    monkeypatch.setattr(deepmf.data.download, "download", unreachable)


@pytest.fixture()
def offline(no_data_no_network, monkeypatch: pytest.MonkeyPatch) -> None:
    """Offline, with a small generated stand-in and short runs so the test stays quick."""
    monkeypatch.setattr(demo, "GENERATED", {"n_users": 100, "n_items": 120, "n_ratings": 4000, "seed": 0})
    monkeypatch.setattr(demo, "DEMO_MODELS", (("mf", {"factors": 4}, {"epochs": 3, "engine": "torch"}),
                                              ("deepmf", {"factors": 4, "layers": [8]}, {"epochs": 3})))


def test_offline_demo_falls_back_to_generated_data_and_says_so(offline, tmp_path: Path) -> None:
    messages: list[str] = []
    result = demo.run_demo(tmp_path / "out", tmp_path / "data", say=messages.append)
    assert result.data_name == "generated MovieLens-like ratings" and result.split == "random:0.2"
    assert len(result.notes) == 1 and "GENERATED MovieLens-shaped ratings" in result.notes[0]
    assert "network unreachable" in result.notes[0] and "not real" in result.notes[0]
    assert any("GENERATED" in m for m in messages)
    assert [r.model_name for r in result.results] == ["mf", "deepmf"]
    for name in ("mf", "deepmf"):
        assert len(result.top[name]) == 10 and len(result.similar[name]) == 10
        assert result.item not in result.similar[name]["item"].tolist()
    report = result.report.read_text()
    assert "GENERATED MovieLens-shaped ratings" in report and "| deepmf |" in report
    for name, folder in result.models.items():
        assert Recommender.load(folder).model_name == name
    assert json.loads(json.dumps(result.to_dict()))["models"][1]["model"] == "deepmf"


def test_demo_command_prints_both_models_lists_side_by_side(offline, run, tmp_path: Path) -> None:
    code, out, err = run("demo", "--out", tmp_path / "r", "--dir", tmp_path / "d")
    assert code == 0 and "GENERATED" in err
    top = out[out.index("Top 10 for user"):out.index("Most similar to")]
    header = next(line for line in top.splitlines() if "predicted" in line)
    assert header.split() == ["#", "mf", "predicted", "deepmf", "predicted"]
    assert sum(line.strip()[:3].strip().isdigit() for line in top.splitlines()) == 10
    # The closing hint names commands that work on what the demo saved.
    hint = next(line for line in out.splitlines() if line.startswith("next: "))
    recommend, serve = (part.strip() for part in hint.removeprefix("next: ").split("|"))
    args = shlex.split(recommend)
    assert args[:2] == ["deepmf", "recommend"]
    code, listing, err = run(*args[1:], "-n", "3")
    assert code == 0 and listing.count("\n") >= 3, err
    assert shlex.split(serve)[:3] == ["deepmf", "serve", args[2]]


def test_demo_command_json(offline, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                           monkeypatch: pytest.MonkeyPatch) -> None:
    _register()
    monkeypatch.setattr(sys, "argv", ["deepmf", "demo", "--out", str(tmp_path / "r"), "--dir",
                                      str(tmp_path / "d"), "--json"])
    assert run_app(app) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"data", "models", "recommendations", "similar", "report", "notes"} <= set(payload)
    assert set(payload["recommendations"]) == set(payload["similar"]) == {"mf", "deepmf"}
    assert len(payload["recommendations"]["deepmf"]) == 10
    assert {"item", "title", "score"} == set(payload["recommendations"]["mf"][0])


@pytest.mark.slow
def test_offline_demo_reads_like_the_real_one(no_data_no_network, tmp_path: Path) -> None:
    """The full-size generated stand-in with the demo's own settings: stars, titles, and both models learn.

    Measured (seed 0): MF 0.907, deep MF 0.934 against 1.119 for the global mean and 1.011 for item biases."""
    result = demo.run_demo(tmp_path / "out", tmp_path / "data")
    data_rmse = {r.model_name: r.metrics["rmse"] for r in result.results}
    assert data_rmse["mf"] <= 0.93
    assert data_rmse["deepmf"] <= 0.96 and data_rmse["deepmf"] - data_rmse["mf"] <= 0.05
    for name, top in result.top.items():
        assert top["title"].str.match(r".+ \(\d{4}\)$").all(), name  # made-up titles with a year
        assert ((top["score"] >= 1) & (top["score"] <= 5)).all() and top["score"].iloc[0] >= 3.8
    assert result.item_title and all(result.similar[name]["title"].str.len().gt(0).all() for name in result.similar)
    evaluation = result.results[0].recommender.evaluation
    assert set(np.unique(evaluation.actual)) == {1.0, 2.0, 3.0, 4.0, 5.0}


@pytest.mark.slow
def test_demo_on_ml100k(data_root: Path, tmp_path: Path) -> None:
    result = demo.run_demo(tmp_path / "report", data_root)
    assert result.data_name == "ml-100k" and result.split == "u1" and result.notes == []
    rmse = {r.model_name: r.metrics["rmse"] for r in result.results}
    # Measured over training seeds 0..4: mf 0.929..0.931, deepmf 0.947..0.950; biases-only scores 0.960 on u1
    # (bench/bounds.py --only demo,baselines).
    assert rmse["mf"] <= 0.94 and rmse["deepmf"] <= 0.955
    mf = result.results[0].recommender
    assert result.user == 1 and len(result.top["mf"]) == len(result.top["deepmf"]) == 10
    assert not set(result.top["mf"]["item"]) & set(mf.rated_vs_predicted(1)["item"])
    assert result.item_title == "Star Wars (1977)"
    assert {"Empire Strikes Back, The (1980)", "Return of the Jedi (1983)"} & set(result.similar["mf"]["title"][:5])
    pictures = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert pictures == sorted(f"{m}_{kind}.png" for m in ("mf", "deepmf")
                              for kind in ("learning_curves", "ratings_histogram", "item_map"))
