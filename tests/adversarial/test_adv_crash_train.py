"""``deepmf train --out`` killed at every step of its checkpoint and model swaps, then resumed.

A driver process imports deepmf once and forks one child per step k: the child runs the real CLI (``run_app``)
with the k-th change on disk turned into ``os._exit`` (as SIGKILL: no cleanup runs), for k = 1, 2, ... until
a run completes. After each kill the folder must hold a loadable model or a checkpoint, ``--resume`` must
finish the run (or, when the kill came before the first checkpoint, say there is nothing to resume, and a
fresh run into the same folder must work without ``--force``), and the final model must be byte for byte the
uninterrupted run's, with nothing left beside it. Forking from a driver that has not trained yet keeps each
step to a fraction of a second without the thread pools that forking a trained process would inherit (the torch
engine, as numba's compiled kernels would be loaded again in every child).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

DRIVER = textwrap.dedent("""
    import hashlib, json, os, sys
    from pathlib import Path
    import torch._dynamo  # imported by the optimizer's first step: once here, not in every child (seconds)
    from deepmf.fsutil import primitives
    from deepmf.cli.app import _register, app
    from deepmf.cli.common import run_app
    from deepmf.recommender import Recommender

    data, work = sys.argv[1], Path(sys.argv[2])
    _register()
    STEPS = ("exchange", "rename_new", "replace_file", "remove_marked", "mark", "unlink_quietly", "carry")

    def cli(out, *flags, fault_at=None):
        pid = os.fork()
        if pid == 0:
            steps = [0]
            def faulty(original):
                def run(*args, **kwargs):
                    steps[0] += 1
                    if steps[0] == fault_at:
                        os._exit(137)
                    return original(*args, **kwargs)
                return run
            if fault_at is not None:
                for name in STEPS:
                    setattr(primitives, name, faulty(getattr(primitives, name)))
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            err = os.open(work / "stderr.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(err, 2)
            sys.argv = ["deepmf", "train", data, "--factors", "4", "--epochs", "2", "--threads", "1",
                        "--split", "random:0.2", "--engine", "torch", "--quiet", "--out", str(out), *flags]
            os._exit(run_app(app))
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), (work / "stderr.txt").read_text()

    def weights(out):
        return hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()

    reference = work / "reference"
    assert cli(reference)[0] == 0
    results, step = [], 0
    while True:
        step += 1
        out = work / f"step{step}" / "model"
        out.parent.mkdir()
        code, _ = cli(out, fault_at=step)
        record = {"step": step, "code": code, "after_kill": sorted(p.name for p in out.iterdir())
                  if out.exists() else None}
        if code == 137:
            if (out / "model.json").exists():
                Recommender.load(out)  # a model that is there is complete
            code, err = cli(out, "--resume")
            record["resume"] = [code, err.strip()]
            if code == 2 and "nothing to resume" in err:
                record["fresh"] = cli(out)[0]
        record["same_weights"] = weights(out) == weights(reference)
        record["left"] = sorted(p.name for p in out.parent.iterdir())
        record["checkpoint"] = (out / "checkpoint" / "state.json").exists()
        results.append(record)
        if code == 0 and "resume" not in record:
            break
        if step > 40:
            break
    print(json.dumps(results))
""")


@pytest.mark.slow
def test_train_killed_at_every_step_then_resumed_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    users, items = rng.integers(1, 40, 900), rng.integers(1, 50, 900)
    frame = pd.DataFrame({"user": users, "item": items, "rating": rng.integers(1, 6, 900)})
    data = tmp_path / "ratings.csv"
    frame.drop_duplicates(["user", "item"]).to_csv(data, index=False)
    driver = subprocess.run([sys.executable, "-c", DRIVER, str(data), str(tmp_path)], capture_output=True,
                            text=True, timeout=900)
    assert driver.returncode == 0, driver.stderr[-3000:]
    results = json.loads(driver.stdout.strip().splitlines()[-1])
    killed = [r for r in results if r["code"] == 137]
    assert len(killed) >= 8, results  # two checkpoint swaps and the final model swap, every step of each
    assert results[-1]["code"] == 0 and "resume" not in results[-1]
    for record in results:
        assert record["same_weights"], record
        assert record["left"] == ["model"], record  # no temp folder, no parked checkpoint
        assert record["checkpoint"], record  # --resume still finds the run's last checkpoint
        if "resume" in record:
            code, err = record["resume"]
            # Only a kill before the first checkpoint leaves nothing to resume; a fresh run then works.
            assert code == 0 or ("nothing to resume" in err and record["fresh"] == 0), record
    assert any("fresh" in r for r in killed) and any(r["resume"][0] == 0 for r in killed)
