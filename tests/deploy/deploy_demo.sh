#!/usr/bin/env bash
# The README's first command's main job, deploy/demo.sh, as a new user runs
# it: it exits 0, the MW adapter wrote facts into the fresh memory (a dump
# line with its provenance), and the MR adapter's answer comes with a read
# trace whose read found answers in that memory.
#   MEMLLM_BIN, MEMLLM_MODELS_DIR: as the other tests get them.
set -uo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$(MEMLLM_MODEL="$MEMLLM_MODELS_DIR/SmolLM2-135M-Instruct.Q4_1.gguf" MEMLLM_THREADS=2 \
  "$root/deploy/demo.sh" 2>&1)
rc=$?
fail() {
  printf '%s\n----- deploy/demo.sh printed:\n%s\n' "$1" "$out"
  exit 1
}
[ $rc -eq 0 ] || fail "deploy/demo.sh exited $rc"
grep -q '>>.*raymond-hermantier.txt #' <<<"$out" || fail "no fact written with its provenance"
grep -q '^-- answer (API spans removed): .' <<<"$out" || fail "no answer"
trace=$(grep '^-- read trace: ' <<<"$out") || fail "no read trace"
grep -q '"outcome": "answered"' <<<"$trace" || fail "no read was answered from the memory"
echo "deploy/demo.sh: facts written, question answered with a read from them"
