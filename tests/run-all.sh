#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   0. style: every C and CUDA file as clang-format (.clang-format) writes it;
#   1. Release build, every ctest test (OpenBLAS picks its kernels itself);
#   2. the tests that reach OpenBLAS (ctest label "blas") again under each
#      OpenBLAS core type this OpenBLAS knows and this CPU can run
#      (OPENBLAS_CORETYPE): a token's logits must not depend on them. OpenBLAS
#      computes only lora_merge (an adapter folded into the weights); every
#      other matmul is memllm's own kernel, so the other model tests (label
#      "model") cannot change with the core type and run once, in step 1;
#   3. AddressSanitizer + UndefinedBehaviorSanitizer build, every ctest test;
#   4. clang libFuzzer build, every fuzz target for a short budget.
# FUZZ_SECONDS (default 30) sets the per-target fuzz budget;
# MEMLLM_BLAS_CORES the core types of step 2 (default: Prescott Haswell Zen
# SkylakeX Cooperlake SapphireRapids, those the CPU and OpenBLAS allow, less
# OpenBLAS's own choice, which step 1 ran; "" for none). Each run takes a
# few seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

echo "== style (clang-format)"
git ls-files -z '*.c' '*.h' '*.cu' '*.cuh' | xargs -0 clang-format --dry-run -Werror

echo "== release build and tests"
deploy/build.sh
# The core OpenBLAS runs under the current environment, asked of the
# library the build links.
blas_lib=$(ldd build/coordinator/memllm 2>/dev/null | awk '/libopenblas/ { print $3; exit }')
blas_core() {
  python3 -c 'import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.openblas_get_corename.restype = ctypes.c_char_p
print(lib.openblas_get_corename().decode())' "${blas_lib:-libopenblas.so.0}"
}
own_core=$(blas_core)
echo "== OpenBLAS core: $own_core (its own choice)"
(cd build && ctest --output-on-failure -j"$jobs")

# Which core types this CPU can run, from its instruction set flags.
cpu_flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
cpu_has() {
  local f
  for f in "$@"; do [[ $cpu_flags == *" $f "* ]] || return 1; done
}
cpu_runs() {
  local avx512=(avx512f avx512bw avx512vl avx512dq)
  case "$1" in
    Prescott) cpu_has pni ;;
    Sandybridge) cpu_has avx ;;
    Haswell | Zen) cpu_has avx2 fma ;;
    SkylakeX) cpu_has "${avx512[@]}" ;;
    Cooperlake) cpu_has "${avx512[@]}" avx512_bf16 ;;
    SapphireRapids) cpu_has "${avx512[@]}" avx512_bf16 amx_tile amx_bf16 ;;
    *) return 2 ;;
  esac
}
failed_cores=()
for core in ${MEMLLM_BLAS_CORES-Prescott Haswell Zen SkylakeX Cooperlake SapphireRapids}; do
  rc=0
  cpu_runs "$core" || rc=$?
  if [ $rc -ne 0 ]; then
    [ $rc -eq 1 ] && why="this CPU lacks its instructions" || why="not a core type listed here"
    echo "== OPENBLAS_CORETYPE=$core: skipped, $why"
    continue
  fi
  got=$(OPENBLAS_CORETYPE=$core blas_core)
  if [ "${got,,}" != "${core,,}" ]; then
    echo "== OPENBLAS_CORETYPE=$core: skipped, this OpenBLAS does not know it (it runs $got)"
    continue
  fi
  if [ "$got" = "$own_core" ]; then
    echo "== OPENBLAS_CORETYPE=$core: skipped, OpenBLAS's own choice (tested above)"
    continue
  fi
  echo "== OpenBLAS tests, OPENBLAS_CORETYPE=$core (OpenBLAS core: $got)"
  (cd build && OPENBLAS_CORETYPE=$core ctest -L blas --output-on-failure -j"$jobs") ||
    failed_cores+=("$core")
done
if [ ${#failed_cores[@]} -gt 0 ]; then
  echo "== OpenBLAS tests failed under OPENBLAS_CORETYPE=${failed_cores[*]}" >&2
  exit 1
fi

echo "== sanitizer build and tests (ASan + UBSan)"
# Without the CUDA backend (-DMEMLLM_CUDA=OFF). CI has no GPU: there the
# sanitized CUDA code would run no further than finding no device, which
# the release build above builds, links and tests (the CUDA tests print
# SKIP; test_device_cli checks the clear failure). Linked in, cuBLAS's
# static initialisers run at every start of the sanitized memllm: a start
# took 0.30 s with them, 0.05 s without, and test_cli_help 90 s of CPU
# instead of 16 s; so does every test that starts memllm or MPI ranks.
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMLLM_SANITIZE=ON \
  -DMEMLLM_CUDA=OFF >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$jobs")

echo "== fuzz targets (libFuzzer)"
# Without the CUDA backend: the fuzz targets are CPU parsers that never
# reach it, and nvcc took most of this build's time. Portable
# (MEMLLM_NATIVE=OFF): the parsers are the same code at any SIMD level, and
# this build, which links the whole engine, then also compiles the kernels'
# portable C as a CPU without AVX2 runs it (with clang, -Werror).
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMLLM_FUZZ=ON \
  -DMEMLLM_CUDA=OFF -DMEMLLM_NATIVE=OFF >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz
tests/run-fuzz.sh build-fuzz "${FUZZ_SECONDS:-30}"
echo "== all tests passed"
