"""Shared fixtures. Real MovieLens data is found through $DEEPMF_DATA (CI sets it to ../shared/data).

Devices: every test assumes the CPU unless it says otherwise, so ``DEEPMF_DEVICE=cpu`` is set for the session
("auto" would otherwise put models on a GPU where one is present, beside CPU tensors the test built). Tests
of GPU engines are marked ``cuda`` and take the ``gpu`` fixture: the GPU where CUDA is present; elsewhere the
CPU with Triton's interpreter, which ``TRITON_INTERPRET=1`` turns on here, before any kernel is defined
(Triton reads it when a kernel is decorated), so the Triton kernels run on CPU tensors in CI too.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
os.environ["DEEPMF_DEVICE"] = "cpu"
if not HAS_CUDA:
    os.environ["TRITON_INTERPRET"] = "1"

from deepmf.cli.app import _register, app  # noqa: E402 - after the environment above
from deepmf.cli.common import run_app  # noqa: E402


def _data_root() -> Path | None:
    root = os.environ.get("DEEPMF_DATA")
    return Path(root) if root else None


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The folder holding ml-100k/ and ml-latest-small/; tests needing it skip when DEEPMF_DATA is unset."""
    root = _data_root()
    if root is None or not (root / "ml-100k" / "u.data").exists():
        pytest.skip("real MovieLens data not available: set DEEPMF_DATA=../shared/data")
    return root


@pytest.fixture(scope="session")
def ml100k_dir(data_root: Path) -> Path:
    return data_root / "ml-100k"


@pytest.fixture(scope="session")
def latest_small_dir(data_root: Path) -> Path:
    path = data_root / "ml-latest-small"
    if not (path / "ratings.csv").exists():
        pytest.skip("ml-latest-small not available")
    return path


@pytest.fixture(scope="session")
def gpu() -> torch.device:
    """The device GPU-engine tests run on: CUDA when present, else the CPU under Triton's interpreter."""
    return torch.device("cuda") if HAS_CUDA else torch.device("cpu")


@pytest.fixture()
def run(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """Run the deepmf CLI in-process: ``run("info", "ml-100k", "--json")`` -> (exit code, stdout, stderr)."""

    def invoke(*argv: object) -> tuple[int, str, str]:
        _register()
        monkeypatch.setattr(sys, "argv", ["deepmf", *map(str, argv)])
        try:
            code = run_app(app)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return invoke
