#!/usr/bin/env bash
# Pipeline figures across hosts against one host, in the same run: the
# coordinator and 2 stages (bench_pipeline) with M = 2, 4, 8 micro-batches,
# once under a plain mpirun on this machine (shared memory between ranks)
# and once across three hosts made by tests/hosts/hosts.sh (network
# namespaces; coordinator, stage 1 and stage 2 each on a host of its own,
# so every hop is TCP), launched by deploy/run-hosts.sh as the tests do.
# Prints, for whole steps and for the flowing schedule, decode tokens/s,
# the measured bubble, the activation hop and the ratio of tokens/s across
# hosts to one host; the hop's latency and bandwidth by message size; then memory-read latency
# (bench_memory_mpi) to a shard rank on the same host and on another, and
# in one process. Needs root (network namespaces); asserts nothing.
#
#   bench/bench_hosts.sh [BUILD_DIR] [MODEL]   (default: build, SmolLM2-135M Q4_1)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
model=${2:-$root/models/SmolLM2-135M-Instruct.Q4_1.gguf}
bench=$build/bench/bench_pipeline
hosts=$root/tests/hosts/hosts.sh
for b in "$bench" "$build/bench/bench_memory_mpi"; do
  [ -x "$b" ] || { echo "bench_hosts: no $b (build it first)" >&2; exit 2; }
done
"$hosts" check
work=$(mktemp -d "${TMPDIR:-/tmp}/memllm-bench-hosts.XXXXXX")
trap '"$hosts" down "$work/hosts"; rm -rf "$work"' EXIT
"$hosts" up 3 "$work/hosts"
awk '{ print $1 " slots=1" }' "$work/hosts/hosts" >"$work/hostfile"
subnet=$(awk 'NR == 1 { sub(/\.[0-9]+$/, ".0/24", $2); print $2 }' "$work/hosts/hosts")
# As tests/hosts/setup.sh: TCP on the hosts' subnet only, and ranks that
# yield their core while they wait (3 ranks may share fewer cores).
tcp_args="--mca plm_rsh_agent $root/tests/hosts/rsh-agent.sh --mca btl tcp,self
  --mca btl_tcp_if_include $subnet --mca oob_tcp_if_include $subnet --mca mpi_yield_when_idle 1"
mpi_root=()
[ "$(id -u)" -ne 0 ] || mpi_root=(--allow-run-as-root)

# 'name: value' lines of bench_pipeline -> "tokens/s bubble hop_ms hop_bytes"
# of the schedule whose keys start with $2 ("": whole steps, "flowing_").
figures() {
  awk -F': ' -v p="$2" '$1 == p "decode_tokens_per_s" { t = $2 }
    $1 == p "bubble_fraction_measured" { b = $2 }
    /^activation_hop_ms/ { split($2, h, "[ (]+"); ms = h[1]; bytes = h[2] }
    END { print t, b, ms, bytes }' "$1"
}

printf '%-8s %-3s %12s %12s %8s %8s %10s %12s %12s %7s\n' schedule M "tok/s here" \
  "tok/s hosts" "bubble" "bubble" "hop bytes" "hop ms here" "hop ms hosts" ratio
for m in 2 4 8; do
  args=("$model" --batch 8 --micro-batches "$m")
  OMP_NUM_THREADS=1 mpirun --oversubscribe "${mpi_root[@]}" -np 3 "$bench" "${args[@]}" \
    --stages 2 >"$work/here-$m.txt"
  MEMLLM_BIN=$bench MEMLLM_THREADS=1 MEMLLM_MPIRUN_ARGS="$tcp_args" \
    "$hosts" exec "$work/hosts" 1 "$root/deploy/run-hosts.sh" "$work/hostfile" 2 0 "${args[@]}" \
    >"$work/hosts-$m.txt"
  # bench_pipeline runs both schedules in each job: whole steps of M
  # micro-batches, then M groups flowing (what memllm's scheduler runs).
  for schedule in whole flowing; do
    prefix=; [ "$schedule" = whole ] || prefix=flowing_
    read -r t1 b1 h1 bytes <<<"$(figures "$work/here-$m.txt" "$prefix")"
    read -r t2 b2 h2 _ <<<"$(figures "$work/hosts-$m.txt" "$prefix")"
    printf '%-8s %-3s %12s %12s %8s %8s %10s %12s %12s %7.2f\n' "$schedule" "$m" "$t1" "$t2" \
      "$b1" "$b2" "$bytes" "$h1" "$h2" "$(echo "$t2 / $t1" | bc -l)"
  done
done
echo "(bubble: here, then across hosts; hop: one micro-batch of activations, one way;"
echo " ratio: tokens/s across hosts / here)"

# The hop by message size (the M = 2 jobs' ping-pong between ranks 0 and 1).
hop() { awk -F': ' -v k="hop_$2_bytes" '$1 == k { split($2, v, "[ ,]+"); print v[1], v[3] }' "$1"; }
echo
echo "one-way hop between ranks 0 and 1 by message size:"
printf '%10s %12s %12s %14s %14s\n' bytes "ms here" "ms hosts" "MB/s here" "MB/s hosts"
for bytes in 1024 4096 16384 65536 262144 1048576; do
  read -r ms1 bw1 <<<"$(hop "$work/here-2.txt" "$bytes")"
  read -r ms2 bw2 <<<"$(hop "$work/hosts-2.txt" "$bytes")"
  printf '%10s %12s %12s %14s %14s\n' "$bytes" "$ms1" "$ms2" "$bw1" "$bw2"
done

# Memory reads: the coordinator on host 1, one shard rank on host 3 (one
# shard: 2 ranks, no more than CI's cores; busy-polling ranks that share a
# core wait for one another's time slices, which would be measured instead).
# bench_memory_mpi times the same queries in-process too.
mem=$build/bench/bench_memory_mpi
awk 'NR == 1 || NR == 3 { print $1 " slots=1" }' "$work/hosts/hosts" >"$work/hostfile-shard"
mpirun --oversubscribe "${mpi_root[@]}" -np 2 "$mem" --passes 3 >"$work/mem-here.txt"
MEMLLM_BIN=$mem MEMLLM_THREADS=1 MEMLLM_MPIRUN_ARGS="$tcp_args" \
  "$hosts" exec "$work/hosts" 1 "$root/deploy/run-hosts.sh" "$work/hostfile-shard" 0 1 --passes 3 \
  >"$work/mem-hosts.txt"
value() { awk -F': ' -v k="$2" '$1 == k { print $2 }' "$1"; }
echo
echo "memory reads, one query at a time ($(value "$work/mem-here.txt" queries), 1 shard), ms:"
printf '%-28s %8s %8s %8s\n' "" p50 p99 mean
for row in "in one process:$work/mem-here.txt:in_process" \
  "shard rank, same host:$work/mem-here.txt:ranks" "shard rank, another host:$work/mem-hosts.txt:ranks"; do
  IFS=: read -r label file key <<<"$row"
  printf '%-28s %8s %8s %8s\n' "$label" "$(value "$file" "${key}_p50_ms")" \
    "$(value "$file" "${key}_p99_ms")" "$(value "$file" "${key}_mean_ms")"
done
