"""`deepmf serve` as a real uvicorn server on loopback (CPU), driven by httpx: answers, errors and SIGHUP
reloads with one worker and with two."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from deepmf.recommender import Recommender

SRC = Path(__file__).resolve().parents[2] / "src"


def _copy(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)


def test_serve_answers_over_http(model_dirs, start_server) -> None:
    server = start_server(model_dirs["mf"])
    rec = Recommender.load(model_dirs["mf"])
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/health").json()["model"] == "mf"
        top = client.get("/users/3/recommendations", params={"n": 3}).json()
        assert [row["item"] for row in top["items"]] == rec.recommend(3, n=3)["item"].tolist()
        new = client.post("/recommendations", json={"ratings": [{"item": 101, "rating": 5}], "n": 3}).json()
        assert 101 not in {row["item"] for row in new["items"]} and new["unknown_items"] == []
        missing = client.get("/users/999/recommendations")
        assert missing.status_code == 404 and missing.json() == {"detail": "unknown user id 999"}
        assert client.get("/users/3/recommendations", params={"n": 0}).status_code == 422
        assert client.get("/").status_code == 200 and client.get("/docs").status_code == 200
    assert "Traceback" not in server.logged()


def test_serve_binds_loopback_only_by_default(model_dirs, start_server) -> None:
    server = start_server(model_dirs["mf"])
    assert f"http://127.0.0.1:{server.port}" in server.logged()


def _serve_command(*args: object) -> list[str]:
    return [sys.executable, "-c", "from deepmf.cli.app import main; main()", "serve", *map(str, args)]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def test_a_bad_folder_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(_serve_command(tmp_path / "nothing"), capture_output=True, text=True, timeout=120,
                            env=_env())
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr


def test_a_port_in_use_is_one_line_and_exit_2(model_dirs) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(_serve_command(model_dirs["mf"], "--port", port, "--json"), capture_output=True,
                                text=True, timeout=120, env=_env())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert json.loads(result.stdout) == {"error": f"cannot listen on 127.0.0.1:{port}: Address already in use",
                                         "exit_code": 2}


def test_serve_json_prints_one_object_and_ctrl_c_stops_it(model_dirs) -> None:
    process = subprocess.Popen(_serve_command(model_dirs["mf"], "--port", 0, "--json"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=_env())
    try:
        info = json.loads(process.stdout.readline() or "{}")  # once the port is bound
        assert info["url"].startswith("http://127.0.0.1:") and info["url"] != "http://127.0.0.1:0"
        assert (info["model"], info["workers"], info["pid"]) == ("mf", 1, process.pid)
        assert info["users"] == Recommender.load(model_dirs["mf"]).n_users
        assert httpx.get(f"{info['url']}/health", timeout=10).json()["status"] == "ok"
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0 and out == "" and "Traceback" not in err  # nothing after the one object


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_sighup_reloads_and_refuses_a_broken_folder(model_dirs, start_server, tmp_path: Path, workers: int) -> None:
    folder = tmp_path / "model"
    _copy(model_dirs["mf"], folder)
    server = start_server(folder, "--workers", str(workers))
    client = httpx.Client(base_url=server.url, timeout=10)
    # With two workers each answers some requests: all must say the same after a reload.
    assert {client.get("/health").json()["model"] for _ in range(10)} == {"mf"}

    _copy(model_dirs["svdpp"], folder)
    server.hup()
    server.wait_until(lambda: {client.get("/health").json()["model"] for _ in range(10)} == {"svdpp"}, 120)
    server.wait_until(lambda: server.logged().count("reloaded") == workers, 30)

    (folder / "model.safetensors").write_bytes(b"not a model")  # tampered: refused, the old model serves on
    server.hup()
    server.wait_until(lambda: server.logged().count("reload refused") == workers, 120)
    assert {client.get("/health").json()["model"] for _ in range(10)} == {"svdpp"}
    assert client.get("/users/3/recommendations").status_code == 200
    assert server.process.poll() is None
    client.close()
