#!/usr/bin/env bash
# GPU check for a fresh machine with an NVIDIA GPU: make sure CuPy is there, run the
# CuPy-backend tests, then time hpnn on CuPy against PyTorch on the same GPU.
#   bash benchmarks/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
if ! "$py" -c "import cupy" 2>/dev/null; then
  "$py" -m pip install -q "cupy-cuda12x" || "$py" -m pip install -q "cupy-cuda13x" \
    || { echo "gpu_check: CuPy could not be installed"; exit 1; }
fi
"$py" -c "import cupy, numpy; print('cupy', cupy.__version__, 'numpy', numpy.__version__)"
status=0
"$py" -m pytest tests/gpu -q -p no:cacheprovider -m gpu || status=$?
"$py" benchmarks/gpu_bench.py || status=$?
exit $status
