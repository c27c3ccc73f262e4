#!/usr/bin/env bash
# A corrupt SST file in a shard (issue 15): bytes flipped in each SST file
# of shard 0 in turn, as a disk's bit rot or a stray write would. For each:
# `memory verify` and `memory dump` exit 1 naming the corrupt file; the
# other memory commands end with an exit status, never a signal; `memory
# restore` of a backup taken before refuses a backup of another memory
# (the damage stays reported) and, from the right one, repairs the memory:
# verify clean, the dump the one before the corruption. The backup's files
# are its own (a hard link to the shard's SST file, as RocksDB's checkpoint
# makes, would have carried the flipped bytes into the backup too).
#
#   corrupt_sst.sh one | mpi
#
# one: one process; mpi: 2 shard ranks under mpirun. With mpi, and with
# MEMLLM_TEST_SIZE=small (the sanitizer build, where every command costs
# several times as much), the first and the last SST file only (a second
# a command under mpirun): one that the shard reads as it opens, one that
# only a scan reads (the triples'), the two ways a corrupt file is met.
set -euo pipefail
case=${1:?usage: $0 one|mpi}
files=all
[ "$case" = one ] && [ "${MEMLLM_TEST_SIZE:-full}" != small ] || files=ends
bin=${MEMLLM_BIN:?run under ctest}
data=${MEMLLM_DATA:?run under ctest}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() {
    echo "corrupt_sst $case: $*" >&2
    exit 1
}
case $case in
one) run=("$bin") shards=1 ;;
# Under sanitizers, LeakSanitizer reports Open MPI's own start-up allocations.
mpi) run=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    mpirun --oversubscribe --allow-run-as-root -np 3 "$bin") shards=2 ;;
*) fail "unknown case" ;;
esac
mem=$work/mem

# Runs a memory command, its output in $work/out and $work/err; returns
# its exit status, failing the test on a signal.
memory() { # COMMAND ARGS...
    local rc=0
    "${run[@]}" memory "$@" --memory "$mem" >"$work/out" 2>"$work/err" || rc=$?
    [ "$rc" -lt 128 ] || fail "memory $1 died of signal $((rc - 128)): $(tail -3 "$work/err")"
    return "$rc"
}

expect_clean() { # WHEN
    memory verify || fail "$1: verify: $(cat "$work/err")"
    if ! grep -q "^missing_reverse: 0$" "$work/out" || ! grep -q "^orphan_reverse: 0$" "$work/out"; then
        fail "$1: verify: $(cat "$work/out")"
    fi
    memory dump || fail "$1: dump: $(cat "$work/err")"
    cmp -s "$work/out" "$work/before.dump" || fail "$1: the dump differs from the one before"
}

python3 -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))[:30], open(sys.argv[2], "w"))' \
    "$data/redocred/dev_revised.json" "$work/docs.json"
memory import-docred "$work/docs.json" --memshards "$shards" --embedder fallback ||
    fail "import-docred: $(tail -2 "$work/err")"
memory dump || fail "dump: $(cat "$work/err")"
cp "$work/out" "$work/before.dump"
[ "$(wc -l <"$work/before.dump")" -gt 100 ] || fail "the memory holds few facts: $(wc -l <"$work/before.dump")"
memory backup "$work/backup" || fail "backup: $(cat "$work/err")"
if [ "$case" = one ]; then
    # Another memory's backup (a shard count of its own), which a restore
    # must refuse.
    "$bin" memory import-docred "$work/docs.json" --memory "$work/other" --memshards 3 \
        --embedder fallback >/dev/null 2>&1
    "$bin" memory backup "$work/other.backup" --memory "$work/other" >/dev/null
fi
# The backup taken, the memory's write-ahead log is in SST files: what
# it holds is where the corruption goes.
mapfile -t ssts < <(cd "$mem/shard-000" && ls ./*.sst)
[ "${#ssts[@]}" -ge 2 ] || fail "shard 0 has ${#ssts[@]} SST files"
[ "$files" = all ] || ssts=("${ssts[0]}" "${ssts[-1]}")
shared=$(find "$work/backup" -type f -links +1 | head -1)
[ -z "$shared" ] || fail "the backup's $shared shares its blocks with another file"

for sst in "${ssts[@]}"; do
    file=$mem/shard-000/${sst#./}
    size=$(stat -c %s "$file")
    # Four bytes a third of the way in: in a block, whose checksum then
    # fails, whichever block (data, index, filter) is there.
    printf '\xde\xad\xbe\xef' | dd of="$file" bs=1 seek=$((size / 3)) conv=notrunc status=none
    for cmd in verify dump; do
        rc=0
        memory "$cmd" || rc=$?
        [ "$rc" -eq 1 ] || fail "$cmd with $file corrupt: exit $rc, not 1: $(tail -2 "$work/err")"
        grep -qF "$file" "$work/err" || fail "$cmd did not name $file: $(tail -2 "$work/err")"
        grep -q "Corruption" "$work/err" || fail "$cmd did not say Corruption: $(tail -2 "$work/err")"
    done
    if [ "$case" = one ]; then
        # The rest: an answer or an error, whatever they read; never a
        # crash.
        memory stats || true
        memory query "Skai TV>>country>>" || true
        memory entity "Skai TV" || true
        memory write "corrupt test>>country>>Greece" || true
        rc=0
        memory restore "$work/other.backup" || rc=$?
        if [ "$rc" -ne 1 ] || ! grep -q "not a checkpoint of shard" "$work/err"; then
            fail "restore from another memory's backup: exit $rc: $(tail -2 "$work/err")"
        fi
        rc=0
        memory verify || rc=$?
        if [ "$rc" -ne 1 ] || ! grep -qF "$file" "$work/err"; then
            fail "after the refused restore, verify: exit $rc: $(tail -2 "$work/err")"
        fi
    fi
    memory restore "$work/backup" || fail "restore with $file corrupt: $(tail -2 "$work/err")"
    expect_clean "restored after $file was corrupt"
    echo "corrupt_sst $case: $file: verify and dump named it; restored"
done
echo "corrupt_sst $case: ok (${#ssts[@]} SST files)"
