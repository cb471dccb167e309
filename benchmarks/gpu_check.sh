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
# (b) with JPEGs decoded by nvJPEG on the GPU (decode=device, the default on CUDA), then by Pillow in the
# DataLoader workers (decode=loader), for the before/after ratio.
for spec in "resnet50 none device" "resnet50 none loader" "skmm:efficientnet_lite0 DEFAULT device"; do
  set -- $spec
  timeout 130 $PY benchmarks/embed_speed.py --device cuda --model "$1" --weights "$2" --decode "$3" --n-images 4096 \
    --naive-images 256 --batch-size 256 --malloc default --jpeg-dir /tmp/skmm_jpegs \
    --output "$OUT/embed_speed_cuda_${1//:/_}_$3.json" 2>&1 | tee -a "$OUT/embed_speed.log" | grep -v Warn
done
SKMM_TEST_DEVICE=cuda timeout 290 $PY -m pytest -q -p no:cacheprovider --timeout=200 tests 2>&1 | tee "$OUT/tests_cuda.log" | tail -25
