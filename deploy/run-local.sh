#!/usr/bin/env bash
# Runs a memllm command on this machine with P pipeline stages and S memory
# shards as MPI ranks (1 coordinator + P + S), giving each rank its share of
# the cores.
#
#   deploy/run-local.sh P S memllm-command [options...]
#   deploy/run-local.sh 2 2 generate --model models/SmolLM2-135M-Instruct.Q4_1.gguf \
#       --memory /tmp/mem --input requests.jsonl
#
# Set MEMLLM_BIN to use another binary (default: build/coordinator/memllm).
set -euo pipefail
if [ $# -lt 3 ]; then
  sed -n '2,10p' "$0" >&2
  exit 2
fi
stages=$1 shards=$2
shift 2
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${MEMLLM_BIN:-$here/build/coordinator/memllm}
ranks=$((1 + stages + shards))
cores=$(nproc)
# Stage ranks do the arithmetic; the coordinator and shards mostly wait.
threads=$(( cores / stages > 0 ? cores / stages : 1 ))
mpi_flags=(--oversubscribe -np "$ranks")
[ "$(id -u)" -eq 0 ] && mpi_flags+=(--allow-run-as-root)
layout=(--stages "$stages")
[ "$shards" -gt 0 ] && layout+=(--memshards "$shards")
exec mpirun "${mpi_flags[@]}" \
  -x OMP_NUM_THREADS="$threads" -x GOMP_SPINCOUNT="${GOMP_SPINCOUNT:-10000}" \
  -x MEMLLM_MODELS_DIR="${MEMLLM_MODELS_DIR:-$here/models}" \
  "$bin" "$@" "${layout[@]}"
