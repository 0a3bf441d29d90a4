#!/usr/bin/env bash
# The GPU figures in one table, in about 5-8 minutes on an H100/H200:
#   1. the tests marked gpu (CUDA against CPU, float64);
#   2. benchmarks/gpu_table.py: the bracket kernel per HVP mode against the published method (convnet and narrow
#      MXResNet, n = 32 and 64), each effect's cost per pair, and demo sweeps by effect, on the GPU;
#   3. benchmarks/bench_overhead.py: the system's ms per task by phase (one GPU worker, 10^4 and 10^5 pairs of a
#      422-parameter MLP), with the task's writes overlapping the next task's compute (the GPU default) and without.
# Usage: benchmarks/gpu.sh            on a machine with CUDA (torch with CUDA installed; see README's setup)
#        benchmarks/gpu.sh --cpu      the same steps at tiny sizes on the CPU (the gpu tests then skip and the
#                                     figures mean nothing); CI checks this script parses and runs its table
#                                     in-process at these sizes (tests/jobs/test_gpu_script.py), so it cannot rot
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0
if [ "${1:-}" = "--cpu" ]; then
  device=cpu; table_args=(--device cpu --tiny); overhead_args=(--device cpu --pairs 1000)
else
  device=cuda; table_args=(--device cuda --repeats "${REPEATS:-3}")
  overhead_args=(--device cuda --workers 1 --pairs 10000 100000)
  python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'gpu.sh: no CUDA device (use --cpu)')"
fi
echo "== gpu tests ($device)"
python -m pytest -q -p no:cacheprovider -m gpu tests 2>&1 | tail -n 3
echo "== kernel, effects and sweeps ($device)"
python benchmarks/gpu_table.py "${table_args[@]}" 2>&1 | grep -v '^\[#*  *\]' | grep -v 'pairs/s  ETA'
echo "== per-task overhead ($device; writes overlapped with the next task's compute, then not)"
python benchmarks/bench_overhead.py "${overhead_args[@]}" 2>&1 | grep -v '^{'
python benchmarks/bench_overhead.py "${overhead_args[@]}" --set cluster.overlap_writes=never 2>&1 | grep -v '^{'
