"""Optional packages (CPU): training and inference run without Optuna, matplotlib and tensorboard; the features
that need one say in one line which pip extra installs it. Missing packages are simulated, not uninstalled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from deepmf.errors import MissingDependencyError
from deepmf.extras import require
from deepmf.testing.conformance import conformance_data

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture()
def ratings_csv(tmp_path: Path) -> Path:
    path = tmp_path / "ratings.csv"
    conformance_data().to_frame().to_csv(path, index=False)
    return path


def _hide(monkeypatch: pytest.MonkeyPatch, *modules: str) -> None:
    """Make ``import MODULE`` fail as if the package were not installed (a None entry in sys.modules)."""
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.parametrize("module, extra", [("optuna", "tune"), ("matplotlib.figure", "plots"),
                                           ("tensorboard", "tensorboard")])
def test_require_names_the_extra(monkeypatch, module, extra) -> None:
    _hide(monkeypatch, module.partition(".")[0], module)
    with pytest.raises(MissingDependencyError, match=rf"pip install 'deepmf\[{extra}\]'"):
        require(module, "this feature")


def test_tune_without_optuna_is_one_line(run, monkeypatch, ratings_csv: Path) -> None:
    _hide(monkeypatch, "optuna")
    code, out, err = run("tune", ratings_csv, "--trials", "1")
    assert code == 2 and out == ""
    assert err.strip() == ("error: hyperparameter search (deepmf tune) needs the optional package optuna, which is "
                           "not installed: pip install 'deepmf[tune]'")


def test_plot_without_matplotlib_is_one_line_and_a_report_degrades(run, monkeypatch, tmp_path: Path) -> None:
    import deepmf
    from deepmf.report import write_report

    data = conformance_data()
    rec = deepmf.fit(data, "mf", factors=4, epochs=2, threads=1)
    model_dir = rec.save(tmp_path / "model")
    _hide(monkeypatch, "matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg", "matplotlib.ticker")
    code, _, err = run("plot", model_dir)
    assert code == 2 and "pip install 'deepmf[plots]'" in err and err.count("\n") == 1
    report = write_report(tmp_path / "report", rec).read_text()
    assert "No pictures" in report and "deepmf[plots]" in report and "![" not in report


def test_training_and_inference_need_neither_optuna_nor_matplotlib(tmp_path: Path, ratings_csv: Path) -> None:
    """A fresh interpreter in which importing optuna, matplotlib or tensorboard fails: train, save, load,
    predict and recommend, through the Python API and the command line. The library's logger has no handler."""
    script = textwrap.dedent(f"""
        import importlib.abc, json, sys

        class Blocked(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.partition(".")[0] in ("optuna", "matplotlib", "tensorboard"):
                    raise ImportError(f"blocked {{name}}")
                return None

        sys.meta_path.insert(0, Blocked())
        import deepmf
        from deepmf.cli.app import main

        data = deepmf.load({str(ratings_csv)!r})
        rec = deepmf.fit(data, "deepmf", factors=4, layers=(8,), epochs=2)
        rec.save({str(tmp_path / "model")!r})
        again = deepmf.Recommender.load({str(tmp_path / "model")!r})
        import logging
        handlers = len(logging.getLogger("deepmf").handlers)  # the library logs, but configures nothing
        print(json.dumps({{"top": len(again.recommend(again.user_ids.raw(0), n=3)), "handlers": handlers}}))
        sys.argv = ["deepmf", "train", {str(ratings_csv)!r}, "--epochs", "2", "--out",
                    {str(tmp_path / "mf")!r}, "--quiet", "--json"]
        try:
            main()
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        print(json.dumps({{"blocked": [m for m in ("optuna", "matplotlib", "tensorboard") if m in sys.modules]}}))
        """)
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines[0] == {"top": 3, "handlers": 0} and lines[-1] == {"blocked": []}
