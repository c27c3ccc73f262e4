#!/usr/bin/env bash
# The whole test suite, as CI runs it:
#   1. Release build, every ctest test;
#   2. AddressSanitizer + UndefinedBehaviorSanitizer build, every ctest test;
#   3. clang libFuzzer build, every fuzz target for a short budget.
# FUZZ_SECONDS (default 30) sets the per-target fuzz budget.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)

echo "== release build and tests"
deploy/build.sh
(cd build && ctest --output-on-failure -j"$jobs")

echo "== sanitizer build and tests (ASan + UBSan)"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMLLM_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$jobs"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j"$jobs")

echo "== fuzz targets (libFuzzer)"
CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMEMLLM_FUZZ=ON >/dev/null
cmake --build build-fuzz -j"$jobs" --target fuzz
tests/run-fuzz.sh build-fuzz "${FUZZ_SECONDS:-30}"
echo "== all tests passed"
