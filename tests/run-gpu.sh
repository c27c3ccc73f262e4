#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one go (CI has none; its CUDA tests
# print SKIP there):
#   1. the CUDA tests: every op against the CPU op, and the GPU stage's
#      logits and greedy tokens against the CPU stage on the model fixtures,
#      in the fast numerics and the batch-invariant ones (with their
#      bit-for-bit checks: a token alone vs in batches, prefill vs decode,
#      rollback, several sequences, 1 vs 2 stages, --batch and
#      --micro-batches through the CLI);
#   2. compute-sanitizer memcheck over the same tests;
#   3. the GPU benchmark next to HF transformers (SmolLM2-135M and
#      Mistral-7B shapes, random bf16 weights), invariant and fast figures
#      side by side;
#   4. (part "train") the CUDA trainer's speed next to PyTorch + PEFT on
#      the same GPU (bench/compare_torch_train.py --device cuda), on the
#      HF directory TRAIN_BENCH_HF (config and tokenizer; random weights
#      are made when it has none).
#
#   tests/run-gpu.sh [BUILD_DIR] [LOG_DIR]
#
# RUN_GPU_PARTS (default "tests bench memcheck"; "train" on request) picks the parts, in that
# order, for a session short of device time.
#
# BUILD_DIR (default build) is a build with the CUDA backend: its tests/,
# bench/ and coordinator/ folders hold the programs (a core-only build,
# -DMEMLLM_CORE_ONLY=ON, has no memllm binary: its CPU/GPU comparison is
# left out). A lib/ folder beside them (or a lib.tar.xz, unpacked into it:
# tests/pack-gpu.sh makes one), if there, joins the library path (for
# programs built on another machine). Logs go to LOG_DIR (default
# $OUT, else gpu-logs); the last lines printed are the summary. Exits
# non-zero if any check failed.
set -u
cd "$(dirname "$0")/.."
build=${1:-build}
logs=${2:-${OUT:-gpu-logs}}
mkdir -p "$logs"
if [ -f "$build/lib.tar.xz" ] && [ ! -d "$build/lib" ]; then
  mkdir -p "$build/lib" && tar -C "$build/lib" -xJf "$build/lib.tar.xz"
fi
if [ -d "$build/lib" ]; then
  # and CUDA's own libraries where the toolkit keeps them on this machine
  export LD_LIBRARY_PATH="$(cd "$build/lib" && pwd):${CUDA_HOME:-/usr/local/cuda}/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
export MEMLLM_FIXTURES=${MEMLLM_FIXTURES:-$PWD/tests/fixtures}
export MEMLLM_MODELS_DIR=${MEMLLM_MODELS_DIR:-$PWD/models}
export OMP_WAIT_POLICY=passive PYTHONUNBUFFERED=1
fixtures="tiny-mistral tiny-mistral-sharded tiny-llama tiny-llama-bf16 tiny-llama-f16 tiny-llama-gguf-f32"
summary="$logs/summary.txt"
: >"$summary"
failed=0
parts=" ${RUN_GPU_PARTS:-tests bench memcheck} "

# check NAME LOG SECONDS CMD...: runs CMD with a time limit, appends its
# output to LOG and one line to the summary.
check() {
  local name=$1 log=$2 secs=$3
  shift 3
  echo "== $name: $*" >>"$log"
  local t0=$SECONDS
  timeout "$secs" "$@" >>"$log" 2>&1
  local rc=$?
  printf '%-28s rc=%-3s %4ss\n' "$name" "$rc" "$((SECONDS - t0))" | tee -a "$summary"
  [ "$rc" = 0 ] || failed=1
}

if ! nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv \
  >"$logs/device.txt" 2>&1; then
  echo "run-gpu: no NVIDIA GPU here (nvidia-smi failed)"
  exit 1
fi
cat "$logs/device.txt"

if [[ $parts == *" tests "* ]]; then
  for t in matmul ops attention train; do
    check "cuda_$t" "$logs/tests.log" 240 "$build/tests/test_kernels_cuda_$t"
  done
  check train_cuda "$logs/tests.log" 240 "$build/tests/test_train_cuda" "$MEMLLM_FIXTURES"
  check cuda_stage "$logs/tests.log" 300 "$build/tests/test_kernels_cuda_stage" $fixtures
  check lora_head "$logs/tests.log" 120 "$build/tests/test_lora_head_cuda"
  if [ -x "$build/coordinator/memllm" ]; then
    check device_cli "$logs/tests.log" 300 env MEMLLM_BIN="$build/coordinator/memllm" \
      "$build/tests/test_device_cli"
  fi
  grep -v -E "^==" "$logs/tests.log" | tail -n 40
fi

if [[ $parts == *" bench "* ]]; then
  for shape in smollm2 mistral7b; do
    check "bench_$shape" "$logs/bench.log" 400 \
      python3 bench/compare_hf_cuda.py --bench "$build/bench/bench_cuda" --shape "$shape"
  done
  grep -v -E "^==" "$logs/bench.log" | tail -n 80
fi

if [[ $parts == *" train "* ]]; then
  check train_bench "$logs/train.log" 500 python3 bench/compare_torch_train.py --device cuda \
    --memllm "$build/coordinator/memllm" --hf "${TRAIN_BENCH_HF:?the train part needs TRAIN_BENCH_HF}"
  grep -v -E "^==" "$logs/train.log" | tail -n 30
fi

if [[ $parts != *" memcheck "* ]]; then
  :
elif command -v compute-sanitizer >/dev/null; then
  for t in matmul ops attention train; do
    check "memcheck_$t" "$logs/memcheck.log" 600 compute-sanitizer --tool memcheck \
      --error-exitcode 9 "$build/tests/test_kernels_cuda_$t"
  done
  check memcheck_train_cuda "$logs/memcheck.log" 600 compute-sanitizer --tool memcheck \
    --error-exitcode 9 "$build/tests/test_train_cuda" "$MEMLLM_FIXTURES"
  check memcheck_stage "$logs/memcheck.log" 600 compute-sanitizer --tool memcheck \
    --error-exitcode 9 "$build/tests/test_kernels_cuda_stage" tiny-mistral tiny-llama-bf16
  grep -h -E "ERROR SUMMARY|Invalid|========= [A-Z]" "$logs/memcheck.log" | sort | uniq -c | head -n 20
else
  echo "compute-sanitizer not found: memcheck not run" | tee -a "$summary"
  failed=1
fi

# On a GPU machine a test that skips is a failure: the device was not usable.
if grep -h "SKIP" "$logs"/*.log; then
  echo "a CUDA program skipped on a GPU machine" | tee -a "$summary"
  failed=1
fi
echo "== summary"
cat "$summary"
exit "$failed"
