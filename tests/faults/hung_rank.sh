#!/usr/bin/env bash
# A rank that stops answering while its host stays up (SIGSTOP: alive, its
# connections open, answering nothing) stops the whole job within
# MEMLLM_FAIL_SECONDS (5 s here; the coordinator's heartbeat watch,
# coordinator/runtime/heartbeat.h), exiting non-zero with an error that
# names the rank's role and host, and leaves no rank running.
#
#   hung_rank.sh stage   generate with 2 stages (tiny Mistral): stage 1,
#                        rank 2, stopped mid-job
#   hung_rank.sh shard   memory import-docred into 2 shard ranks: shard 1,
#                        rank 2, stopped mid-import
#
# MEMLLM_BIN, MEMLLM_FIXTURES and MEMLLM_DATA come from ctest; mpirun from
# PATH. Exits 77 (skipped) where the MPI library runs no second thread.
set -euo pipefail
case=${1:?usage: $0 stage|shard}
bin=${MEMLLM_BIN:?run under ctest}
bound=5
work=$(mktemp -d)
pids=()
victim=
cleanup() {
  # Whatever the test's outcome, no rank of its job outlives it.
  [ -z "$victim" ] || kill -CONT "$victim" 2>/dev/null || true
  [ "${#pids[@]}" -eq 0 ] || kill -9 "${pids[@]}" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "hung_rank $case: FAIL: $*" >&2
  exit 1
}
mpirun=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" "MEMLLM_FAIL_SECONDS=$bound"
  mpirun --oversubscribe --allow-run-as-root -np 3)

case $case in
stage)
  # Enough work to outlast the test by far: 2000 requests of 200 tokens.
  for i in $(seq 1 2000); do echo "{\"prompt\": \"Once upon a time $i\", \"max_tokens\": 200}"; done \
    >"$work/requests.jsonl"
  job=(generate --model "${MEMLLM_FIXTURES:?}/models/tiny-mistral" --input "$work/requests.jsonl"
    --stages 2)
  role="stage 1"
  # Under way: results are coming.
  started() { [ -s "$work/out" ]; }
  ;;
shard)
  job=(memory import-docred "${MEMLLM_DATA:?}/redocred/dev_revised.json" --memory "$work/mem"
    --memshards 2 --embedder fallback)
  role="memory shard 1"
  # Under way: shard 1 has written to its log.
  started() { [ -n "$(find "$work/mem/shard-001" -name '*.log' -size +0 2>/dev/null)" ]; }
  ;;
*) fail "unknown case" ;;
esac

# (env execs mpirun: $! is mpirun's pid.)
OMP_NUM_THREADS=1 "${mpirun[@]}" "$bin" "${job[@]}" >"$work/out" 2>"$work/err" &
job_pid=$!
# Rank 2 among this mpirun's children (other jobs may run beside this
# test): the one whose environment says so.
for _ in $(seq 1 300); do
  for p in $(pgrep -P "$job_pid" || true); do
    if tr '\0' '\n' 2>/dev/null <"/proc/$p/environ" | grep -qx 'OMPI_COMM_WORLD_RANK=2'; then
      victim=$p
    fi
  done
  [ -n "$victim" ] && started && break
  kill -0 "$job_pid" 2>/dev/null || break
  sleep 0.1
done
read -ra pids <<<"$(pgrep -P "$job_pid" | paste -sd' ')"
if grep -q "are not watched" "$work/err"; then
  echo "hung_rank $case: SKIP: $(grep 'are not watched' "$work/err")"
  exit 77
fi
[ -n "$victim" ] || fail "rank 2 never started: $(tail -3 "$work/err")"
started || fail "the job never got under way: $(tail -3 "$work/err")"
kill -STOP "$victim"
start=$(date +%s%N)
# The job must stop by itself: give it the bound and 20 s more.
for _ in $(seq 1 $(((bound + 20) * 10))); do
  kill -0 "$job_pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$job_pid" 2>/dev/null; then
  fail "the job still runs $((bound + 20)) s after $role (rank 2) stopped: $(tail -3 "$work/err")"
fi
status=0
wait "$job_pid" || status=$?
took_ms=$((($(date +%s%N) - start) / 1000000))
[ "$status" -ne 0 ] || fail "the job exited 0 with $role stopped"
want="$role (rank 2 on host $(hostname)) has not answered"
grep -qF "$want" "$work/err" || fail "no error says '$want': $(tail -5 "$work/err")"
grep -qF "MEMLLM_FAIL_SECONDS=$bound" "$work/err" || fail "the error names no bound: $(tail -5 "$work/err")"
# Within the bound (the watch gives a rank half of it at 5 s, keeping the
# rest for Open MPI to end the job; heartbeat.c, STOP_SECONDS; then
# MPI_Abort ends the ranks).
[ "$took_ms" -le $((bound * 1000)) ] ||
  fail "the job stopped $took_ms ms after $role stopped (bound $bound s)"
# No rank is left: each is gone or a zombie waiting for its parent.
sleep 0.5
for p in "${pids[@]}"; do
  state=$(awk '{ print $3 }' "/proc/$p/stat" 2>/dev/null || true)
  [ -z "$state" ] || [ "$state" = Z ] || fail "rank process $p still runs (state $state)"
done
echo "hung_rank $case: the job stopped $took_ms ms after $role was stopped" \
  "(exit $status): $(grep -F "$want" "$work/err")"
