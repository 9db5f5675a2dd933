#!/usr/bin/env bash
# Issue 40's checks of cinv's CUDA path, in one call on a lent GPU machine (benchmarks/gpu_check.py
# says what each measures; each has its own time limit, about 12.5 minutes in all at most: two calls, as below).
#
# Here, once, before the call (needs PyPI; puts .whl/ and .gpu_data/ in the checkout, both in .gitignore):
#     bash benchmarks/gpu_check.sh --fetch
# Then one device call (the tool's run), carrying both:
#     run(command="bash benchmarks/gpu_check.sh", carry=[".whl", ".gpu_data"], timeout_s=600)
# or two, when one would run past the 10-minute limit of a call:
#     bash benchmarks/gpu_check.sh --only tests main_job throughput
#     bash benchmarks/gpu_check.sh --only train paper_step
# (between the two, copy the first call's gpu.json from $OUT into benchmarks/results/ here: it travels
# with the second call, which adds its checks to it).
# It writes benchmarks/results/gpu.json (and a copy in $OUT, which comes back).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--fetch" ]; then
  mkdir -p .whl .gpu_data
  PIP_CONFIG_FILE=/dev/null python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_34_x86_64 --platform manylinux_2_31_x86_64 \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
    -d .whl -r <(grep -v '^#' benchmarks/gpu_wheels.txt)
  cp -r ../shared/data/imagenet-samples .gpu_data/
  du -sh .whl .gpu_data
  exit 0
fi
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="$PWD:/tmp/site${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 TQDM_DISABLE=1
samples=.gpu_data/imagenet-samples
[ -d "$samples" ] || samples=../shared/data/imagenet-samples
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 benchmarks/gpu_check.py --samples "$samples" "$@"
if [ -n "${OUT:-}" ]; then cp benchmarks/results/gpu.json "$OUT/"; fi
