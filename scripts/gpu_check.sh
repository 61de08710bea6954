#!/usr/bin/env bash
# GPU check of issue 11, in one command (about 4-5 minutes on one H100/H200):
#
#   here, once (network):   bash scripts/gpu_wheels.sh          # clarabel, foolbox, ... -> .whl/
#   device tool:            run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=540)
#
# Installs nothing from the network: the wheels in .whl/ (if present) go to /tmp/site with
# pip --no-index; the repository itself is imported through PYTHONPATH (no pip install -e).
# Writes to $OUT (at most 8 files come back): env.txt, gpu_check.json, gpu_check.md and the
# logs of the three pytest runs (kernel tests, the gpu-marked tests, the image study on CUDA).
# Each step has its own time limit, so one hanging step does not eat the others' time.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu_check_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-8}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
status=0

if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi

{ date -u; nvidia-smi 2>&1 | head -15; git rev-parse HEAD 2>/dev/null
  $PY - <<'PY'
import importlib, platform, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available())
for m in ("triton", "pytest", "pytest_benchmark", "numpy", "scipy", "sympy", "clarabel", "foolbox",
          "matplotlib", "seaborn", "tqdm", "pynvml"):
    try:
        mod = importlib.import_module(m)
        print(f"{m:18s} {getattr(mod, '__version__', 'ok')}")
    except Exception as err:
        print(f"{m:18s} MISSING ({type(err).__name__}: {err})")
import lowrank
print("lowrank from", lowrank.__file__)
PY
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

step() {  # step NAME SECONDS COMMAND...: run with a limit, log to $OUT/NAME.log
  local name=$1 limit=$2; shift 2
  echo "=== $name (limit ${limit}s): $*"
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  tail -25 "$OUT/$name.log"
  echo "=== $name: exit $rc after $((SECONDS - t0)) s"
  [ $rc -eq 0 ] || status=1
}

# 1. the deep path on CUDA, the kernel timings and the tile sweep (JSON + Markdown tables)
step gpu_check_py 270 $PY scripts/gpu_check.py --out "$OUT" --budget 110 --tile-budget 75
# 2. the tests parametrised over the device fixture, on CUDA only
step pytest_gpu 80 $PY -m pytest tests/test_deep_train.py tests/test_kernels.py -m gpu -q \
    -p no:cacheprovider -o addopts="-ra"
# 3. the kernel tests (Triton on CUDA tensors; the compile test too)
step pytest_kernels 100 $PY -m pytest tests/test_kernels.py -q -x -p no:cacheprovider \
    -o addopts="-ra"
# 4. the image study end to end with --device auto (CUDA): records cuda:0 in its results
step pytest_image 75 $PY -m pytest tests/test_image_study.py -q -x -p no:cacheprovider \
    -o addopts="-ra"
echo "gpu_check.sh: overall status $status"
exit $status
