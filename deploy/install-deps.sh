#!/usr/bin/env bash
# Installs everything memllm needs to build, test and run, from Debian's
# packages and PyPI. Idempotent: a second run changes nothing.
#
#   deploy/install-deps.sh           build + test + run dependencies
#   deploy/install-deps.sh --tools   also the Python stack of tools/ (torch,
#                                    transformers, peft, llama-cpp-python
#                                    with its server's extras, matplotlib),
#                                    needed only to remake reference fixtures,
#                                    and llama.cpp's llama-bench in .peer/, the
#                                    peer of bench/compare_llamacpp.py
#                                    (deploy/build-llamacpp-peer.sh)
set -euo pipefail

want_tools=0
for arg in "$@"; do
  case "$arg" in
    --tools) want_tools=1 ;;
    *) echo "install-deps.sh: unknown option '$arg'" >&2; exit 2 ;;
  esac
done

sudo_cmd=""
if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi

# Why each library (see README "Dependencies"):
#   librocksdb-dev      the memory shards' storage engine
#   libopenmpi-dev      ranks: pipeline stages and memory shards
#   libprotobuf-c-dev   wire format between coordinator and shards
#   libopenblas-dev     CPU GEMM for folding a LoRA adapter into the weights
#   libjansson-dev      JSON (config.json, tokenizer.json, JSONL) with
#                       line/column error reporting
#   libmicrohttpd-dev   the HTTP service
#   libpng-dev          the PNG plots of reports (training loss curves)
#   clang, libclang-rt  libFuzzer targets and sanitizer builds
#   chromium, chromium-driver  test_serve_ui drives memllm serve's page in
#                       headless Chromium through WebDriver (the driver is
#                       the browser's own version, so nothing is downloaded)
#   munge, slurmctld, slurmd, slurm-client  a one-node Slurm of the test's
#                       own runs deploy/slurm.sbatch (tests/hosts/slurm.sh)
apt_pkgs=(build-essential cmake pkg-config git clang clang-format
  libclang-rt-14-dev libomp-dev librocksdb-dev libopenmpi-dev openmpi-bin
  libprotobuf-c-dev protobuf-c-compiler libopenblas-dev libjansson-dev
  libmicrohttpd-dev libpng-dev python3 python3-pip unzip chromium chromium-driver
  munge slurmctld slurmd slurm-client)

missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

pip_cmd=(python3 -m pip install -q --disable-pip-version-check)
if python3 -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
  if ! python3 -c 'import sys; sys.exit(sys.prefix != sys.base_prefix)' 2>/dev/null \
     && [ -f /usr/lib/python3*/EXTERNALLY-MANAGED ] 2>/dev/null; then
    pip_cmd+=(--break-system-packages)
  fi
fi

# What the tests need from PyPI: the real OpenAI client drives memllm serve
# (tests/serve/test_serve.py), selenium drives its page in Chromium
# (tests/serve/test_serve_ui.py). Installed only when missing, so a second
# run reaches no registry.
if ! python3 -c 'import openai' 2>/dev/null; then
  echo "[install-deps] Python test packages: openai" >&2
  "${pip_cmd[@]}" openai
fi
if ! python3 -c 'import selenium' 2>/dev/null; then
  echo "[install-deps] Python test packages: selenium" >&2
  "${pip_cmd[@]}" selenium
fi

if [ "$want_tools" -eq 1 ]; then
  echo "[install-deps] Python tools: numpy safetensors tokenizers gguf torch transformers peft sentence-transformers matplotlib, llama_cpp.server's extras" >&2
  "${pip_cmd[@]}" numpy safetensors tokenizers gguf torch transformers peft \
    sentence-transformers matplotlib fastapi uvicorn sse-starlette starlette-context \
    pydantic-settings
  # llama.cpp's own llama-bench (bench/compare_llamacpp.py), from the
  # llama.cpp vendored in llama-cpp-python's sdist.
  peer=$(dirname "$0")/build-llamacpp-peer.sh
  "$peer"
  # llama-cpp-python (tools/make_llamacpp_reference.py, the GGUF fixtures) is
  # built from that same sdist, the version the fixtures were made with, and
  # with the same ggml flags: PyPI has no wheel, and pip's default native
  # build enables AMX, whose matmul dies with SIGSEGV on AMX CPUs.
  version=$("$peer" --print-version)
  if ! python3 -c 'import sys, llama_cpp; sys.exit(llama_cpp.__version__ != sys.argv[1])' "$version" 2>/dev/null; then
    sdist=$("$peer" --print-sdist)
    echo "[install-deps] building llama-cpp-python $version from $sdist (several minutes)" >&2
    CMAKE_ARGS="$("$peer" --print-ggml-flags) -DLLAMA_OPENSSL=OFF" "${pip_cmd[@]}" "$sdist"
  fi
fi
