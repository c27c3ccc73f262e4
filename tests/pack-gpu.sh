#!/usr/bin/env bash
# Packs the GPU checks for a GPU machine that lacks the build's packages
# (MPI, RocksDB, OpenBLAS...), e.g. a lent machine that receives only a
# copy of the repository: builds the CUDA tests, bench_cuda and memllm for
# any x86-64 CPU (-DMEMLLM_NATIVE=OFF), and copies them with the shared
# libraries they need (not the CUDA ones, which the GPU machine has) into
# OUT_DIR, the libraries as one xz archive to keep it small.
#
#   tests/pack-gpu.sh OUT_DIR [BUILD_DIR]        (default build-gpu)
#
# Then, on the GPU machine, from the repository's root:
#   tests/run-gpu.sh OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: tests/pack-gpu.sh OUT_DIR [BUILD_DIR]}
build=${2:-build-gpu}
programs=(tests/test_kernels_cuda_matmul tests/test_kernels_cuda_ops
  tests/test_kernels_cuda_attention tests/test_kernels_cuda_train tests/test_kernels_cuda_stage
  tests/test_lora_head_cuda tests/test_train_cuda
  tests/test_device_cli
  bench/bench_cuda coordinator/memllm)

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMEMLLM_NATIVE=OFF >/dev/null
targets=()
for p in "${programs[@]}"; do targets+=(--target "$(basename "$p")"); done
cmake --build "$build" -j"$(nproc)" "${targets[@]}"

rm -rf "$out"
mkdir -p "$out/tests" "$out/bench" "$out/coordinator" "$out/lib-staging"
for p in "${programs[@]}"; do
  [ -x "$build/$p" ] || { echo "pack-gpu: $build/$p was not built (no nvcc?)" >&2; exit 1; }
  cp "$build/$p" "$out/$p"
done
# Every shared library the programs load, except the C runtime and CUDA's.
for p in "${programs[@]}"; do ldd "$out/$p"; done | awk '$3 ~ /^\// {print $3}' | sort -u |
  grep -v -E '/(libc|libm|libpthread|libdl|librt|libstdc\+\+|libgcc_s)\.so|/cuda' |
  while read -r lib; do cp -L "$lib" "$out/lib-staging/"; done
strip --strip-unneeded "$out"/lib-staging/*
tar -C "$out/lib-staging" -cJf "$out/lib.tar.xz" .
rm -rf "$out/lib-staging"
du -sh "$out"
