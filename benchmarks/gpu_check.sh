#!/usr/bin/env bash
# The GPU check, as one script for a machine with CUDA (run from the repository root):
# the test suite with its models on CUDA, then image embedding throughput for ResNet-50 (random
# weights) and the offline EfficientNet-Lite0. Writes logs and JSON to ${OUT:-gpu_out}/.
# Missing packages can be put in .whl/ as wheels (see docs/performance.md).
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-gpu_out}; mkdir -p "$OUT"
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/skmm_site .whl/*.whl \
    && export PYTHONPATH=/tmp/skmm_site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
$PY -c "import torch, torchvision, timm, sklearn; print('torch', torch.__version__, 'torchvision', torchvision.__version__, 'timm', timm.__version__, 'sklearn', sklearn.__version__, 'cpus', __import__('os').cpu_count())" | tee -a "$OUT/gpu.txt"
df -h /dev/shm | tee -a "$OUT/gpu.txt"
# The suite first (what never ran on a GPU matters more than timings). TEST_WORKERS=8 spreads it over
# processes (pytest-xdist), each given its share of the cores (16 workers of 16 torch threads each on 16
# cores once made CPU-only tests crawl); TEST_TIMEOUT / EMBED_TIMEOUT / N_IMAGES shorten a run to fit a
# short lease. At TEST_TIMEOUT pytest gets SIGINT, so it still prints its failures and their tracebacks.
# The CLI and backend tests need the default models' packages and OpenVINO: without them they fail.
WORKERS=${TEST_WORKERS:-0}
THREADS=$(( $(nproc) / (WORKERS > 0 ? WORKERS : 1) ))
OMP_NUM_THREADS=$(( THREADS > 0 ? THREADS : 1 )) SKMM_TEST_DEVICE=cuda \
  timeout -s INT -k 30 ${TEST_TIMEOUT:-290} $PY -m pytest -q -rfE --tb=short -p no:cacheprovider --timeout=200 \
  $( [ "$WORKERS" -gt 0 ] && echo "-n $WORKERS" ) tests 2>&1 | tee "$OUT/tests_cuda.log" | tail -60
# (b) with JPEGs decoded by nvJPEG on the GPU (decode=device, the default on CUDA), then by Pillow in the
# DataLoader workers (decode=loader), for the before/after ratio.
for spec in "resnet50 none device" "resnet50 none loader" "skmm:efficientnet_lite0 DEFAULT device"; do
  set -- $spec
  timeout ${EMBED_TIMEOUT:-130} $PY benchmarks/embed_speed.py --device cuda --model "$1" --weights "$2" --decode "$3" \
    --n-images ${N_IMAGES:-4096} \
    --naive-images 256 --batch-size 256 --malloc default --jpeg-dir /tmp/skmm_jpegs \
    --output "$OUT/embed_speed_cuda_${1//:/_}_$3.json" 2>&1 | tee -a "$OUT/embed_speed.log" | grep -v Warn
done
