#!/usr/bin/env bash
# Kills a shard rank with SIGKILL while rank 0 streams acknowledged writes
# through it, then restarts the job on the same directories and checks that
# every acknowledged fact is there, both copies (test_memory_mpi_crash.c).
set -euo pipefail
prog=${1:?usage: $0 TEST_PROGRAM}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Under sanitizers, LeakSanitizer reports Open MPI's own start-up allocations.
mpirun=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    mpirun --oversubscribe --allow-run-as-root)

"${mpirun[@]}" -np 3 "$prog" write "$work" >"$work/write.log" 2>&1 &
job=$!
for _ in $(seq 1 600); do
    if [ -f "$work/acked" ] && [ "$(wc -l <"$work/acked")" -ge 200 ]; then break; fi
    if ! kill -0 "$job" 2>/dev/null; then
        echo "mpi_crash: the writing job ended early:" >&2
        cat "$work/write.log" >&2
        exit 1
    fi
    sleep 0.1
done
[ "$(wc -l <"$work/acked")" -ge 200 ] || { echo "mpi_crash: too few writes" >&2; exit 1; }
kill -KILL "$(cat "$work/pid-2")"
wait "$job" && { echo "mpi_crash: the job survived its shard's death" >&2; exit 1; }
rm -f "$work"/pid-*
"${mpirun[@]}" -np 3 "$prog" check "$work"
