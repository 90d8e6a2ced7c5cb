#!/usr/bin/env bash
# The one command for a machine with a CUDA GPU (BENCHMARKS.md, "GPU", says how it is run and what it measures):
#
#     bash bench/gpu_run.sh        # logs and results under $OUT (default ./gpu-out); limited to 470 s in all
#
# 1. installs this checkout without touching the machine's packages (torch, triton, numba... are the image's),
# 2. runs the GPU-engine tests (pytest -m cuda: the Triton kernel and the torch sampler for real),
# 3. runs bench/gpu.py (results: $OUT/gpu_bench.json and gpu_bench.md),
# 4. runs the rest of the test suite in the time left.
# Each step has its own time limit so that the whole stays inside 8 minutes (470 s), and each writes its own
# log under $OUT; a failing step does not stop the next. ML-100K rows and tests need the data: DEEPMF_DATA, or a
# git-ignored copy at .devdata/ml-100k carried to the machine.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# The source tree first on the path: if the editable install fails (an old setuptools, say), deepmf still imports.
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
if [ -z "${DEEPMF_DATA:-}" ] && [ -d .devdata/ml-100k ]; then
    export DEEPMF_DATA="$PWD/.devdata"
fi
start=$(date +%s)
elapsed() { echo $(( $(date +%s) - start )); }

{
    date -u
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    "$PY" -c "import torch, numba; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available(), 'numba', numba.__version__)"
    "$PY" -c "import triton; print('triton', triton.__version__)" || echo "triton missing: cuda-sgd unavailable"
    "$PY" -m pip install -q --no-deps --no-build-isolation -e .
} > "$OUT/install.log" 2>&1
echo "install: exit $? after $(elapsed) s"

timeout 150 "$PY" -m pytest -q -p no:cacheprovider -m cuda -ra > "$OUT/pytest_cuda.log" 2>&1
echo "pytest -m cuda: exit $? after $(elapsed) s: $(tail -n 1 "$OUT/pytest_cuda.log")"

# BENCH_ARGS adds options (e.g. "--device cpu --quick" to try this script on a machine without a GPU).
# shellcheck disable=SC2086
timeout 300 "$PY" bench/gpu.py --out "$OUT" --budget 240 ${BENCH_ARGS:-} > "$OUT/bench.log" 2>&1
echo "bench/gpu.py: exit $? after $(elapsed) s"

left=$(( 470 - $(elapsed) ))
# pytest-xdist, where the image has it, runs the rest on 4 processes (one file per worker at a time).
parallel=""
if "$PY" -c "import xdist" 2>/dev/null; then parallel="-n 4 --dist loadfile"; fi
if [ "$left" -gt 30 ]; then
    # shellcheck disable=SC2086
    timeout "$left" "$PY" -m pytest -q -p no:cacheprovider -m "not cuda" -ra $parallel > "$OUT/pytest.log" 2>&1
    echo "pytest -m 'not cuda': exit $? after $(elapsed) s: $(tail -n 1 "$OUT/pytest.log")"
else
    echo "pytest -m 'not cuda': not run, no time left" | tee "$OUT/pytest.log"
fi
echo
cat "$OUT/gpu_bench.md" 2>/dev/null || tail -n 40 "$OUT/bench.log"
grep -E "^(FAILED|ERROR)" "$OUT/pytest_cuda.log" "$OUT/pytest.log" 2>/dev/null | head -n 40
