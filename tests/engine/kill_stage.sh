#!/usr/bin/env bash
# A stage rank that dies stops the whole job with an error naming the rank
# (Open MPI's runtime reports it; the other ranks are not left waiting).
#   kill_stage.sh MPIRUN MEMLLM MODEL
set -euo pipefail
mpirun=$1 bin=$2 model=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "kill_stage: $*" >&2; exit 1; }

# Enough work to outlast the kill by far: 2000 requests of 200 tokens.
for i in $(seq 1 2000); do echo "{\"prompt\": \"Once upon a time $i\", \"max_tokens\": 200}"; done \
  >"$work/requests.jsonl"
OMP_NUM_THREADS=1 "$mpirun" --oversubscribe --allow-run-as-root -np 3 "$bin" generate \
  --model "$model" --input "$work/requests.jsonl" --stages 2 >"$work/out" 2>"$work/err" &
job=$!
# Find stage 1 (MPI rank 2) among this mpirun's children (other jobs may
# run beside this test) and kill it mid-run.
victim=
for _ in $(seq 1 100); do
  for p in $(pgrep -P "$job" || true); do
    if tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qx 'OMPI_COMM_WORLD_RANK=2'; then
      victim=$p
    fi
  done
  [ -n "$victim" ] && [ -s "$work/out" ] && break
  sleep 0.1
done
[ -n "$victim" ] || fail "rank 2 never started"
kill -9 "$victim"
status=0
# A job that does not stop by itself within the budget is the failure.
for _ in $(seq 1 300); do
  kill -0 "$job" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$job" 2>/dev/null; then
  kill -9 "$job"
  fail "the job kept running after rank 2 died"
fi
wait "$job" || status=$?
[ "$status" -ne 0 ] || fail "the job exited 0 after rank 2 died"
grep -q "rank 2" "$work/err" || fail "no message names rank 2: $(cat "$work/err")"
echo "kill_stage: the job stopped (exit $status) naming rank 2"
