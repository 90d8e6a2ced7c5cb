"""bench/gpu.py, the one prepared GPU command, still runs end to end: its CPU smoke mode (CPU only; the GPU
rows are skipped and say why). It runs rarely, on a lent machine with minutes to spare, so a break must show
here first."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_bench_smoke_run_on_the_cpu(tmp_path: Path, data_root: Path) -> None:
    env = {**os.environ, "DEEPMF_DATA": str(data_root), "CUDA_VISIBLE_DEVICES": "",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--quick",
                           "--skip-large", "--out", str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "gpu_bench.json").read_text())
    engines = {(row["model"], row["engine"]) for row in result["rows"] if row.get("test_rmse") is not None}
    assert {("mf", "numba"), ("deepmf", "torch"), ("bayes", "gibbs")} <= engines
    assert {row["engine"] for row in result["auto"]} >= {"numba", "torch", "gibbs"}
    assert (tmp_path / "gpu_bench.md").read_text().count("\n") > 10
