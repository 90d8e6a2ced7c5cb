"""Fixtures of the service tests: small trained model folders (CPU), and a real `deepmf serve` on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

import deepmf
from deepmf.data.ratings import ItemTable, Ratings

pytest.importorskip("fastapi", reason="the service tests need the [serve] extra")

SRC = Path(__file__).resolve().parents[2] / "src"


def tiny_ratings(seed: int = 0) -> Ratings:
    """60 users x 40 items (raw ids 1.. and 101..) from a rank-2 model plus noise, ratings 1..5, with titles;
    item 140 is in the id map but has no rating."""
    rng = np.random.default_rng(seed)
    users, items = np.nonzero(rng.random((60, 39)) < 0.4)
    taste = rng.normal(size=(60, 2)) @ rng.normal(size=(2, 39))
    ratings = np.clip(np.round(3.3 + taste[users, items] + rng.normal(0, 0.5, len(users))), 1, 5)
    frame = pd.DataFrame({"user": users + 1, "item": items + 101, "rating": ratings.astype(np.float32)})
    frame = pd.concat([frame, pd.DataFrame({"user": [1], "item": [140], "rating": [3.0]})], ignore_index=True)
    data = Ratings.from_frame(frame, name="tiny")
    titles = np.array([f"Film {i} ({1980 + i})" for i in range(data.n_items)], dtype=object)
    titles[0] = "Star Film (1977)"
    data = Ratings(data.users, data.items, data.ratings, data.user_ids, data.item_ids, data.scale,
                   item_table=ItemTable(titles, None, ()), name="tiny")
    return data.subset(data.items != data.item_ids.index(140))


@pytest.fixture(scope="session")
def model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two saved models of the tiny data: "mf" (factors 4) and "svdpp", for serving and reloading."""
    root = tmp_path_factory.mktemp("models")
    data = tiny_ratings()
    dirs = {}
    for name, options in (("mf", {"factors": 4, "epochs": 20}), ("svdpp", {"factors": 3, "epochs": 5})):
        rec = deepmf.fit(data, model=name, seed=0, valid_fraction=0, **options)
        dirs[name] = rec.save(root / name)
    return dirs


@pytest.fixture(scope="session")
def implicit_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """iALS on the tiny data's ratings >= 4 as interactions (an implicit model trained from ratings)."""
    from deepmf.data.implicit import to_implicit

    rec = deepmf.fit(to_implicit(tiny_ratings(), positive=4), model="ials", seed=0, valid_fraction=0)
    return rec.save(tmp_path_factory.mktemp("models") / "ials")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Server:
    """A `deepmf serve` child process on a free loopback port; its output goes to a log file."""

    def __init__(self, model_dir: Path, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
        self.handle = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from deepmf.cli.app import main; main()", "serve", str(model_dir),
             "--port", str(self.port), *extra],
            stdout=self.handle, stderr=subprocess.STDOUT, env=env,
        )
        self.wait_until(lambda: httpx.get(f"{self.url}/health", timeout=2).status_code == 200, 120)

    def wait_until(self, condition, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"deepmf serve exited {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if condition():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"gave up after {seconds} s; server log: {self.log.read_text()[-2000:]}")

    def hup(self) -> None:
        self.process.send_signal(signal.SIGHUP)

    def logged(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.handle.close()


@pytest.fixture()
def start_server(tmp_path: Path) -> Iterator:
    """``start_server(model_dir, *flags)`` starts `deepmf serve`; every server is stopped after the test."""
    servers: list[Server] = []

    def start(model_dir: Path, *extra: str) -> Server:
        server = Server(model_dir, tmp_path / f"server{len(servers)}.log", *extra)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
