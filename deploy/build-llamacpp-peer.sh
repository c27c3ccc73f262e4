#!/usr/bin/env bash
# Builds llama.cpp's own llama-bench, the speed peer of bench/compare_llamacpp.py,
# from the llama.cpp vendored in llama-cpp-python's source package on PyPI
# (GitHub is not reachable from where memllm is set up; PyPI is).
#
#   deploy/build-llamacpp-peer.sh                 build .peer/llama-bench (once)
#   deploy/build-llamacpp-peer.sh --print-sdist   fetch and verify the sdist only,
#                                                 print its path
#   deploy/build-llamacpp-peer.sh --print-ggml-flags
#                                                 print the ggml CPU flags used
#   deploy/build-llamacpp-peer.sh --print-version llama-cpp-python's version
#
# Run by deploy/install-deps.sh --tools. Everything lands in .peer/ (ignored):
#   .peer/llama_cpp_python-VERSION.tar.gz   the sdist, sha256 checked
#   .peer/llama-bench                       the binary (static llama/ggml)
#   .peer/llama-bench.info                  'name: value' lines: sdist, its
#                                           sha256, llama.cpp commit, cmake flags
#   .peer/build.log                         the last configure + build output
# Idempotent: when .peer/llama-bench is there and its .info names the same
# sdist sha256 and the same cmake flags, nothing is done.
#
# ggml is built with GGML_NATIVE=OFF and each x86 feature set explicitly from
# /proc/cpuinfo, AMX off: ggml's AMX matmul (ggml_backend_amx_mul_mat) dies
# with SIGSEGV on CPUs with AMX flags, in the pip wheel and in a native build.
set -euo pipefail

SDIST_VERSION=0.3.36
SDIST_NAME=llama_cpp_python-$SDIST_VERSION.tar.gz
# PyPI's sha256 of llama_cpp_python-0.3.36.tar.gz (vendors ggml-org/llama.cpp@0c1e57098).
SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e

here=$(cd "$(dirname "$0")/.." && pwd)
peer=$here/.peer
sdist=$peer/$SDIST_NAME
bin=$peer/llama-bench
info=$peer/llama-bench.info
log=$peer/build.log

say() { echo "[llama.cpp peer] $*" >&2; }
die() { echo "build-llamacpp-peer.sh: $*" >&2; exit 1; }

mode=build
for arg in "$@"; do
  case "$arg" in
    --print-sdist) mode=sdist ;;
    --print-ggml-flags) mode=flags ;;
    --print-version) mode=version ;;
    *) die "unknown option '$arg'" ;;
  esac
done

# One -DGGML_X=ON|OFF per x86 feature ggml can use, from this CPU's flags.
ggml_cpu_flags() {
  if [ "$(uname -m)" != x86_64 ]; then
    echo "-DGGML_NATIVE=ON"   # AMX is x86 only; elsewhere ggml's own detection
    return
  fi
  local have
  have=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  has() { local f; for f in "$@"; do [[ "$have" == *" $f "* ]] || return 1; done; }
  onoff() { if has "$@"; then echo ON; else echo OFF; fi; }
  local out=(-DGGML_NATIVE=OFF)
  out+=("-DGGML_SSE42=$(onoff sse4_2)")
  out+=("-DGGML_AVX=$(onoff avx)")
  out+=("-DGGML_AVX2=$(onoff avx2)")
  out+=("-DGGML_FMA=$(onoff fma)")
  out+=("-DGGML_F16C=$(onoff f16c)")
  out+=("-DGGML_BMI2=$(onoff bmi2)")
  out+=("-DGGML_AVX_VNNI=$(onoff avx_vnni)")
  # GGML_AVX512 compiles with -mavx512f -mavx512cd -mavx512vl -mavx512dq -mavx512bw.
  local avx512
  avx512=$(onoff avx512f avx512cd avx512vl avx512dq avx512bw)
  out+=("-DGGML_AVX512=$avx512")
  if [ "$avx512" = ON ]; then
    out+=("-DGGML_AVX512_VBMI=$(onoff avx512vbmi)")
    out+=("-DGGML_AVX512_VNNI=$(onoff avx512_vnni)")
    out+=("-DGGML_AVX512_BF16=$(onoff avx512_bf16)")
  else
    out+=(-DGGML_AVX512_VBMI=OFF -DGGML_AVX512_VNNI=OFF -DGGML_AVX512_BF16=OFF)
  fi
  out+=(-DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
  echo "${out[*]}"
}

# The sdist in .peer/, fetched from PyPI when absent, its sha256 checked.
fetch_sdist() {
  mkdir -p "$peer"
  if [ -f "$sdist" ] && [ "$(sha256sum "$sdist" | cut -d' ' -f1)" = "$SDIST_SHA256" ]; then
    return
  fi
  say "downloading llama-cpp-python $SDIST_VERSION source package from PyPI (~75 MB)"
  rm -f "$sdist"
  local tmp
  tmp=$(mktemp -d "$peer/download.XXXXXX")
  if ! python3 -m pip download -q --disable-pip-version-check --no-binary :all: --no-deps \
      -d "$tmp" "llama-cpp-python==$SDIST_VERSION"; then
    rm -rf "$tmp"
    die "pip download of llama-cpp-python==$SDIST_VERSION failed (is PyPI reachable?)"
  fi
  [ -f "$tmp/$SDIST_NAME" ] || { rm -rf "$tmp"; die "pip download gave no $SDIST_NAME"; }
  local got
  got=$(sha256sum "$tmp/$SDIST_NAME" | cut -d' ' -f1)
  if [ "$got" != "$SDIST_SHA256" ]; then
    rm -rf "$tmp"
    die "$SDIST_NAME has sha256 $got, expected $SDIST_SHA256"
  fi
  mv "$tmp/$SDIST_NAME" "$sdist"
  rm -rf "$tmp"
}

ggml_flags=$(ggml_cpu_flags)
# Release, static libraries (one self-contained binary), CPU backend only,
# no BLAS (ggml's own kernels, as llama.cpp ships), no HTTPS, and of the
# tools only llama-bench is built. This llama.cpp has no curl code any more
# (LLAMA_CURL is deprecated and ignored); LLAMA_OPENSSL=OFF is what is left.
cmake_flags="-DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF $ggml_flags \
-DGGML_BACKEND_DL=OFF -DGGML_CPU_ALL_VARIANTS=OFF -DGGML_BLAS=OFF -DGGML_OPENMP=ON -DGGML_CCACHE=OFF \
-DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
-DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON"

case "$mode" in
  flags) echo "$ggml_flags"; exit 0 ;;
  version) echo "$SDIST_VERSION"; exit 0 ;;
  sdist) fetch_sdist; echo "$sdist"; exit 0 ;;
esac

info_value() { sed -n "s/^$1: //p" "$info" 2>/dev/null; }
if [ -x "$bin" ] && [ "$(info_value sdist_sha256)" = "$SDIST_SHA256" ] \
   && [ "$(info_value cmake_flags)" = "$cmake_flags" ]; then
  say "llama-bench up to date: $bin (llama.cpp $(info_value llama_cpp_commit) from llama-cpp-python $SDIST_VERSION)"
  exit 0
fi

for tool in cmake make cc c++ git; do
  command -v "$tool" >/dev/null || die "'$tool' is missing: run deploy/install-deps.sh first"
done
fetch_sdist

src=$peer/src
build=$peer/build
rm -rf "$src" "$build"
mkdir -p "$src"
say "unpacking $SDIST_NAME"
# --no-same-owner: git (llama.cpp's build-info reads the commit) refuses a
# tree owned by someone else.
tar -xzf "$sdist" -C "$src" --no-same-owner
llama_src=$src/llama_cpp_python-$SDIST_VERSION/vendor/llama.cpp
[ -f "$llama_src/tools/llama-bench/llama-bench.cpp" ] || die "$SDIST_NAME holds no vendor/llama.cpp/tools/llama-bench"
commit=$(git -C "$llama_src" rev-parse HEAD 2>/dev/null || echo unknown)

jobs=$(nproc 2>/dev/null || echo 2)
say "configuring llama.cpp ${commit:0:9}: $cmake_flags"
# shellcheck disable=SC2086  # cmake_flags is a list of words
if ! cmake -S "$llama_src" -B "$build" $cmake_flags >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  die "cmake configure failed (full output in $log)"
fi
say "building llama-bench with $jobs jobs (a few minutes; output in $log)"
# make's '[ NN%]' lines as progress, one line per ten percent.
if ! cmake --build "$build" --target llama-bench -j "$jobs" 2>&1 | tee -a "$log" \
     | awk 'match($0, /^\[ *[0-9]+%\]/) { p = int(substr($0, 2, 3)); if (p >= last + 10) { last = p - p % 10; printf "[llama.cpp peer]   %d%%\n", p > "/dev/stderr"; fflush("/dev/stderr") } }'; then
  tail -n 30 "$log" >&2
  die "build failed (full output in $log)"
fi
[ -x "$build/bin/llama-bench" ] || die "the build made no $build/bin/llama-bench (see $log)"

install -m 0755 "$build/bin/llama-bench" "$bin.tmp"
mv "$bin.tmp" "$bin"
{
  echo "sdist: llama-cpp-python $SDIST_VERSION ($SDIST_NAME)"
  echo "sdist_sha256: $SDIST_SHA256"
  echo "llama_cpp_commit: $commit"
  echo "compiler: $(c++ --version | head -n1)"
  echo "cmake_flags: $cmake_flags"
} >"$info"
rm -rf "$src" "$build"
say "installed $bin (llama.cpp ${commit:0:9}); build facts in $info"
