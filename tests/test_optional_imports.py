"""deepmf imports, loads and trains where Optuna and platformdirs are missing (a GPU machine's fixed image has
neither); only ``tune`` needs Optuna, and it says so in one line."""

from __future__ import annotations

import subprocess
import sys
import textwrap

CHILD = textwrap.dedent("""
    import os, sys
    sys.modules["optuna"] = None          # an import of either now raises ImportError
    sys.modules["platformdirs"] = None
    os.environ.pop("DEEPMF_DATA", None)
    os.environ["XDG_CACHE_HOME"] = sys.argv[1]
    import deepmf
    from deepmf.cli.app import _register
    from deepmf.data.loading import data_dir
    from deepmf.data.splits import random_split
    from deepmf.data.synthetic import synthetic_ratings
    from deepmf.errors import ConfigError
    from deepmf.tune import tune
    _register()  # every CLI command module imports
    print(data_dir())
    data = synthetic_ratings("lowrank", n_users=10, n_items=10, rank=2, n_observed=60, seed=0)
    deepmf.fit(data, model="mf", factors=2, epochs=1, threads=1, device="cpu")
    try:
        tune(data, [random_split(data, 0.2)], "mf", 1)
    except ConfigError as exc:
        print("tune:", exc)
""")


def test_imports_and_trains_without_optuna_or_platformdirs(tmp_path) -> None:
    done = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == str(tmp_path / "deepmf" / "data")  # the XDG rule without platformdirs
    assert lines[-1] == ("tune: hyperparameter search (deepmf tune) needs the optional package optuna, which is "
                         "not installed: pip install 'deepmf[tune]'")
