#!/usr/bin/env bash
# Download, here (with network), the wheels of the runtime dependencies that the GPU machines'
# image lacks (checked against /work/.library/device/KINDS.md, 2026-11-26: it has torch, triton,
# numpy, scipy, sympy, tqdm, matplotlib, seaborn, pytest, pytest-benchmark, nvidia-ml-py, but not
# clarabel, cffi, pycparser, foolbox, eagerpy, GitPython, gitdb, smmap) into .whl/ (git-ignored).
# scripts/gpu_check.sh installs them offline into /tmp/site when .whl/ travels with the run
# (device tool: carry [".whl"]). Python 3.12, x86-64, as on those machines.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
PY=${PYTHON:-python3}
plat=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
         manylinux1_x86_64; do plat+=(--platform "$p"); done
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${plat[@]}" -d .whl clarabel==0.11.1 cffi==2.1.1 pycparser==3.12 foolbox==3.3.4 \
    eagerpy==0.30.0 GitPython==3.2.1 gitdb==4.0.12 smmap==5.0.3
ls -la .whl
