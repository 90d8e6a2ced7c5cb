"""Loading benchmark: ML-100K, ml-latest-small and a generated 20M-row CSV through ``deepmf.data.load``.

    python bench/load.py                   # generate bench/data/load/ratings-20m.csv once, then measure
    python bench/load.py --rows 2000000    # a quicker look with a smaller generated file

The generated file has ML-20M's ``ratings.csv`` layout and shape: header ``userId,movieId,rating,timestamp``,
138,493 users x 26,744 items, 20,000,000 distinct (user, item) pairs sorted by user, half-star ratings and unix
timestamps. Each measurement runs in its own child process, so its time includes parsing, validation (NaN,
scale, duplicates check) and id-map building, and its peak RSS is that load's alone (Python, numpy, pandas,
pyarrow and torch imports included).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from _common import DATA_DIR, data_root, machine_line, markdown_table, peak_rss_mib, run_child

N_USERS = 138_493
N_ITEMS = 26_744
LOAD_DIR = DATA_DIR / "load"


def generate(path: Path, rows: int, seed: int = 0) -> None:
    """Write ``rows`` distinct (user, item) ratings in ML-20M's CSV layout to ``path`` (atomically)."""
    rng = np.random.default_rng(seed)
    # Oversample cell keys, drop repeats, then keep ``rows`` of them in random order.
    keys = np.unique(rng.integers(0, N_USERS * N_ITEMS, size=int(rows * 1.02) + 1000, dtype=np.int64))
    keys = np.sort(rng.permutation(keys)[:rows])  # sorted keys = sorted by user, as in ML-20M
    if len(keys) < rows:
        raise RuntimeError("not enough distinct cells drawn")
    table = pa.table(
        {
            "userId": (keys // N_ITEMS + 1).astype(np.int64),
            "movieId": (keys % N_ITEMS + 1).astype(np.int64),
            "rating": (rng.integers(1, 11, size=rows) * 0.5).astype(np.float64),
            "timestamp": rng.integers(789_652_009, 1_427_784_002, size=rows, dtype=np.int64),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pacsv.write_csv(table, tmp, write_options=pacsv.WriteOptions(quoting_style="none"))
    tmp.replace(path)


def own_peak_rss_mib() -> float:
    """Peak RSS of this process image in MiB. VmHWM restarts at exec; ru_maxrss can carry over the parent's
    peak from before the fork (here: the parent that generated the 20M-row file)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mib()


def child(source: str) -> None:
    """Load ``source`` once in this process and print one JSON line: seconds, sizes, peak RSS."""
    start = time.perf_counter()
    from deepmf.data import load

    imported = time.perf_counter()
    r = load(source)
    done = time.perf_counter()
    print(
        json.dumps(
            {
                "seconds": done - imported,
                "import_seconds": imported - start,
                "n_ratings": len(r),
                "n_users": r.n_users,
                "n_items": r.n_items,
                "peak_rss_mib": own_peak_rss_mib(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20_000_000, help="rows of the generated CSV")
    parser.add_argument("--repeat", type=int, default=3, help="runs per source (the best time is reported)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    big = LOAD_DIR / f"ratings-{args.rows}.csv"
    if not big.exists():
        start = time.perf_counter()
        generate(big, args.rows)
        print(
            f"generated {big} ({big.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - start:.1f} s",
            file=sys.stderr,
        )
    sources = [
        ("ML-100K (folder, + u.item/u.user)", str(data_root() / "ml-100k")),
        ("ml-latest-small (folder, + movies.csv)", str(data_root() / "ml-latest-small")),
        (f"generated CSV, {args.rows:,} rows ({big.stat().st_size / 2**20:.0f} MiB)", str(big)),
    ]
    rows = []
    for label, source in sources:
        runs = [run_child([str(Path(__file__).resolve()), "--child", source]) for _ in range(args.repeat)]
        best = min(runs, key=lambda run: run["seconds"])
        rows.append(
            [
                label,
                f"{best['n_ratings']:,}",
                f"{best['n_users']:,}",
                f"{best['n_items']:,}",
                f"{best['seconds']:.2f}",
                f"{best['n_ratings'] / best['seconds'] / 1e6:.1f}M",
                f"{max(run['peak_rss_mib'] for run in runs):.0f}",
            ]
        )
    print(machine_line())
    print()
    print(
        markdown_table(
            ["source", "ratings", "users", "items", f"load s (best of {args.repeat})", "ratings/s", "peak RSS MiB"],
            rows,
        )
    )


if __name__ == "__main__":
    main()
