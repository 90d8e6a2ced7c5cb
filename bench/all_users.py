"""All users' top-N to a file (`deepmf recommend MODEL --all-users --out FILE`), timed on a 20M-rating MF.

    python bench/all_users.py                     # mf20m (trained once by bench/serve_load.py's model_dir), top-10
    python bench/all_users.py --models mf100k,mf20m --out-format csv

Each run is a fresh child process: load the model folder, then ``deepmf.export.export_recommendations``
(users scored in chunks, seen items skipped, Parquet written chunk by chunk and renamed into place). The table gives
load and write seconds, rows written and the child's peak RSS. Target (issue 14): the 20M-rating model
(138,493 users x 26,744 items) writes every user's top-10 in under 60 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import machine_line, markdown_table, peak_rss_mib, run_child


def measure(name: str, n: int, suffix: str) -> dict[str, object]:
    from deepmf.export import export_recommendations
    from deepmf.recommender import Recommender
    from serve_load import model_dir

    path = model_dir(name)
    started = time.perf_counter()
    rec = Recommender.load(path)
    loaded = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=path.parent) as folder:
        summary = export_recommendations(rec, Path(folder) / f"recs{suffix}", n=n)
        size = summary.path.stat().st_size
    return {"model": name, "users": summary.users, "items": rec.n_items, "rows": summary.rows,
            "load_s": loaded - started, "write_s": summary.seconds, "file_mib": size / 2**20,
            "peak_rss_mib": peak_rss_mib()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mf20m")
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--out-format", choices=("parquet", "csv"), default="parquet")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    suffix = f".{args.out_format}"
    if args.child:
        print(json.dumps(measure(args.child, args.n, suffix)))
        return
    print(machine_line())
    rows = []
    for name in args.models.split(","):
        result = run_child([str(Path(__file__).resolve()), "--child", name, "-n", str(args.n),
                            "--out-format", args.out_format])
        print(json.dumps(result), file=sys.stderr)
        rows.append([name, f"{result['users']:,} x {result['items']:,}", f"{result['rows']:,}",
                     f"{result['load_s']:.1f}", f"{result['write_s']:.1f}", f"{result['file_mib']:.0f}",
                     f"{result['peak_rss_mib']:.0f}"])
    print(f"\nEvery user's top-{args.n} to {args.out_format}:\n")
    print(markdown_table(["model", "users x items", "rows", "load s", "write s", "file MiB", "peak RSS MiB"],
                         rows))


if __name__ == "__main__":
    main()
