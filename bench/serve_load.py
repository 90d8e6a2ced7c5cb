"""Load benchmark of `deepmf serve`: a bounded async httpx client against a real server on loopback.

    python bench/serve_load.py                          # ML-100K MF, 60 s per endpoint mix, 500 requests/s offered
    python bench/serve_load.py --models mf100k,mf20m    # also an MF of the 20M-rating data of bench/scale.py
    python bench/serve_load.py --rate 0 --seconds 20    # closed loop: as fast as the server answers
    python bench/serve_load.py --mixes recs --rate 100,200,300,400,500   # where p99 stays under 10 ms

The models are trained once with their defaults and saved under bench/data/serve/ (mf100k: all of ML-100K;
mf20m: bench/scale.py's generated ML-20M-shaped ratings, 138,493 users x 26,744 items, 5 epochs). For each
mix the client offers ``--rate`` requests/s (open loop, at most ``--concurrency`` in flight: when the server
falls behind, the achieved rate says so) for ``--seconds``, after a short warm-up, and reports requests/s,
p50/p99 latency (send to full response, on the client), errors (anything but a 2xx, or a failed request), and
the server's resident memory before and after the mix (summed over its processes), and the CPU time server
and client spent per request (less sensitive than latency to other work on the machine). Client and server
share the machine's cores; the load average is printed with every run.

Mixes: ``health`` GET /health (the floor: HTTP and framework, no model work); ``recs`` GET
/users/{u}/recommendations?n=10; ``similar`` GET /items/{i}/similar?n=10; ``predict`` POST /predict with
10 pairs; ``new_user`` POST /recommendations with 10 ratings (fold-in); ``mixed`` 70 % recs, 10 % of each of
similar, predict and new_user.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import DATA_DIR, REPO_ROOT, data_root, load_average, machine_line, markdown_table

SERVE_DIR = DATA_DIR / "serve"
MIXES = ("health", "recs", "similar", "predict", "new_user", "mixed")


def model_dir(name: str) -> Path:
    """The saved model ``name`` (mf100k or mf20m), trained and saved the first time it is asked for."""
    path = SERVE_DIR / name
    if (path / "model.json").exists():
        return path
    import deepmf

    if name == "mf100k":
        data = deepmf.load(data_root() / "ml-100k")
        options: dict[str, object] = {}
    elif name == "mf20m":
        from scale import SCALE_DIR, generate

        if not (SCALE_DIR / "ratings-20m.csv").exists():
            generate(SCALE_DIR)
        data = deepmf.load(SCALE_DIR / "ratings-20m.csv")
        options = {"epochs": 5, "patience": 0}
    else:
        raise SystemExit(f"unknown model {name!r}: mf100k or mf20m")
    print(f"training {name} ...", file=sys.stderr, flush=True)
    deepmf.fit(data, model="mf", valid_fraction=0, **options).save(path)
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn workers), MiB."""
    total = 0.0
    for proc in [pid, *_children(pid)]:
        try:
            for line in Path(f"/proc/{proc}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


def server_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and its children (uvicorn workers)."""
    total = 0
    for proc in [pid, *_children(pid)]:
        try:
            fields = Path(f"/proc/{proc}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        except OSError:
            pass
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    return [int(child) for child in found] + [grand for child in found for grand in _children(int(child))]


class Requests:
    """Random requests of each mix, over the model's trained users and items."""

    def __init__(self, path: Path, seed: int = 0) -> None:
        from deepmf.recommender import Recommender

        rec = Recommender.load(path)
        counts = rec.seen.user_counts()
        self.users = rec.user_ids.raw(np.flatnonzero(counts > 0)).tolist()
        item_counts = rec.seen.item_counts()
        self.items = rec.item_ids.raw(np.flatnonzero(item_counts > 0)).tolist()
        self.popular = rec.item_ids.raw(np.argsort(-item_counts)[:500]).tolist()
        self.rng = random.Random(seed)

    def make(self, mix: str) -> tuple[str, str, dict | None]:
        rng = self.rng
        if mix == "mixed":
            mix = rng.choices(("recs", "similar", "predict", "new_user"), weights=(7, 1, 1, 1))[0]
        if mix == "health":
            return "GET", "/health", None
        if mix == "recs":
            return "GET", f"/users/{rng.choice(self.users)}/recommendations?n=10", None
        if mix == "similar":
            return "GET", f"/items/{rng.choice(self.items)}/similar?n=10", None
        if mix == "predict":
            pairs = [{"user": rng.choice(self.users), "item": rng.choice(self.items)} for _ in range(10)]
            return "POST", "/predict", {"pairs": pairs}
        ratings = [{"item": item, "rating": rng.randint(1, 5)} for item in rng.sample(self.popular, 10)]
        return "POST", "/recommendations", {"ratings": ratings, "n": 10}


async def drive(url: str, requests: Requests, mix: str, seconds: float, rate: float,
                concurrency: int) -> dict[str, float]:
    """Offer ``rate`` requests/s (0: closed loop) for ``seconds`` with at most ``concurrency`` in flight."""
    import httpx

    latencies: list[float] = []
    errors = 0
    kinds: dict[str, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        slots = asyncio.Semaphore(concurrency)

        async def one() -> None:
            nonlocal errors
            method, path, body = requests.make(mix)
            start = time.perf_counter()
            try:
                response = await client.request(method, path, json=body)
                await response.aread()
                if response.status_code >= 300:
                    errors += 1
                    kinds[str(response.status_code)] = kinds.get(str(response.status_code), 0) + 1
            except httpx.HTTPError as exc:
                errors += 1
                kinds[type(exc).__name__] = kinds.get(type(exc).__name__, 0) + 1
            latencies.append(time.perf_counter() - start)
            slots.release()

        tasks: set[asyncio.Task] = set()
        started = time.perf_counter()
        sent = 0
        while (now := time.perf_counter()) - started < seconds:
            if rate > 0:
                due = started + sent / rate
                if due > now:
                    await asyncio.sleep(due - now)
            await slots.acquire()
            task = asyncio.create_task(one())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
    values = np.array(latencies) * 1000
    return {"requests": len(values), "rps": len(values) / elapsed, "p50_ms": float(np.percentile(values, 50)),
            "p99_ms": float(np.percentile(values, 99)), "errors": errors, "error_kinds": kinds}


def run_model(name: str, args: argparse.Namespace) -> list[list[object]]:
    path = model_dir(name)
    requests = Requests(path)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    command = [sys.executable, "-c", "from deepmf.cli.app import main; main()", "serve", str(path),
               "--port", str(port), "--workers", str(args.workers), "--threads", str(args.threads)]
    log = tempfile.NamedTemporaryFile(prefix="deepmf-serve-", suffix=".log", delete=False)  # noqa: SIM115
    server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    rows = []
    try:
        import httpx

        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                tail = Path(log.name).read_text()[-2000:]
                raise SystemExit(f"deepmf serve did not start ({server.poll()}): {tail}")
            time.sleep(0.5)
        for mix, rate in [(mix, float(rate)) for mix in args.mixes.split(",") for rate in args.rate.split(",")]:
            asyncio.run(drive(url, requests, mix, min(5.0, args.seconds), rate, args.concurrency))  # warm-up
            before = server_rss_mib(server.pid)
            load = load_average()
            cpu_before, client_before = server_cpu_seconds(server.pid), time.process_time()
            result = asyncio.run(drive(url, requests, mix, args.seconds, rate, args.concurrency))
            result["server_cpu_ms"] = 1000 * (server_cpu_seconds(server.pid) - cpu_before) / result["requests"]
            result["client_cpu_ms"] = 1000 * (time.process_time() - client_before) / result["requests"]
            after = server_rss_mib(server.pid)
            if args.json:
                print(json.dumps({"model": name, "mix": mix, "rate": rate, **result, "rss_before_mib": before,
                                  "rss_after_mib": after, "load": load}), flush=True)
            rows.append([name, mix, "closed" if rate <= 0 else f"{rate:g}", f"{result['rps']:.0f}",
                         f"{result['p50_ms']:.1f}", f"{result['p99_ms']:.1f}", result["errors"],
                         f"{result['server_cpu_ms']:.2f}", f"{result['client_cpu_ms']:.2f}",
                         f"{before:.0f} → {after:.0f}", f"{load:.1f}"])
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        if any(row[6] for row in rows):  # errors: keep what the server said
            print(f"server log (errors in the run): {log.name}", file=sys.stderr)
        else:
            Path(log.name).unlink()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mf100k", help="mf100k and/or mf20m")
    parser.add_argument("--mixes", default=",".join(MIXES))
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", default="500",
                        help="offered requests/s, or several comma-separated (each mix at each); 0: closed loop")
    parser.add_argument("--concurrency", type=int, default=32, help="most requests in flight")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per server worker")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    print(machine_line())
    rows = []
    for name in args.models.split(","):
        rows += run_model(name, args)
    print(f"\n`deepmf serve` with {args.workers} worker(s), {args.threads} torch thread(s) each; client: httpx, "
          f"at most {args.concurrency} requests in flight, {args.seconds:g} s per mix after a warm-up\n")
    print(markdown_table(["model", "mix", "offered/s", "requests/s", "p50 ms", "p99 ms", "errors",
                          "server CPU ms/req", "client CPU ms/req", "server RSS MiB", "load"], rows))


if __name__ == "__main__":
    main()
