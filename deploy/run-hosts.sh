#!/usr/bin/env bash
# Runs a memllm command across several hosts with P pipeline stages and S
# memory shards as MPI ranks (1 coordinator + P + S), placed by the hostfile
# (the counterpart of deploy/run-local.sh, which runs them all here).
#
#   deploy/run-hosts.sh HOSTFILE P S memllm-command [options...]
#   deploy/run-hosts.sh deploy/hostfile 2 2 generate --model /models/M.gguf \
#       --memory /data/memory --input requests.jsonl
#   deploy/run-hosts.sh deploy/hostfile-shards 0 2 edit edits.jsonl --memory /data/memory
#
# The hostfile is Open MPI's (deploy/hostfile.example): ranks fill its hosts
# in order, each up to its slots, so rank 0 (the coordinator) goes on the
# first host, the P stages next, then the S shards; its slots must add up to
# 1 + P + S. Run it on the first host. The binary, the model and adapters
# must be at the same paths on every host, and --memory must name a
# directory on each shard's host.
#
#   MEMLLM_BIN          the binary (default: build/coordinator/memllm here)
#   MEMLLM_THREADS      compute threads of each rank (default: all the cores
#                       of its host)
#   MEMLLM_FAIL_SECONDS how long a host may be unreachable, or a rank silent
#                       (stopped, hung), before the job stops, naming it
#                       (default 30)
#   MEMLLM_MPIRUN_ARGS  more mpirun options, split at spaces: how Open MPI
#                       starts its daemons and which networks it uses, e.g.
#                       "--mca plm_rsh_agent ssh --mca btl_tcp_if_include eth1"
set -euo pipefail
if [ $# -lt 4 ]; then
  sed -n '2,25p' "$0" >&2
  exit 2
fi
hostfile=$1 stages=$2 shards=$3
shift 3
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${MEMLLM_BIN:-$here/build/coordinator/memllm}
ranks=$((1 + stages + shards))

# A hostfile with fewer slots than ranks would make mpirun refuse, and one
# with more would leave ranks where the file does not say: check it here and
# say which.
slots=$(awk '{ sub(/#.*/, "") } NF { n = 1; for (i = 2; i <= NF; i++)
  if ($i ~ /^slots=/) n = substr($i, 7); s += n } END { print s + 0 }' "$hostfile")
if [ "$slots" -ne "$ranks" ]; then
  echo "run-hosts.sh: $hostfile has $slots slots; 1 coordinator + $stages stages + $shards shards" \
    "need $ranks" >&2
  exit 2
fi

# Each host's ranks by role, for the reader of a failure: Open MPI names
# the host it lost, not what ran there. Stages and shards count from 0, as
# in memllm's own messages.
roles=$(awk -v P="$stages" '{ sub(/#.*/, "") } NF { n = 1; for (i = 2; i <= NF; i++)
  if ($i ~ /^slots=/) n = substr($i, 7); line = ""
  for (k = 0; k < n; k++) { role = r == 0 ? "coordinator" : r <= P ? "stage " r - 1 : "memory shard " r - P - 1
    line = line (k ? ", " : "") role " (rank " r++ ")" }
  print "  " $1 ": " line }' "$hostfile")

# A host that drops off the network (a partition, a dead link) sends no
# FIN, and with Open MPI's own TCP keepalives (idle 300 s, then 9 probes 20 s
# apart) its daemon would be missed after 8 minutes, the job hanging until
# then. Here mpirun drops a silent daemon after `detect` seconds (an idle
# connection probed after a quarter of it, then 3 probes a quarter apart)
# and stops the job in the rest of the bound; the lost host's daemon, cut
# off from mpirun the same way, kills its ranks. `detect` is the rule of
# the coordinator's heartbeat watch (coordinator/runtime/heartbeat.c):
# three quarters of the bound, or less where the rest would leave Open MPI
# under 6 s to end the job (measured: 3.5-4.2 s across hosts), never under
# half of it.
fail_s=${MEMLLM_FAIL_SECONDS:-30}
detect=$((fail_s * 3 / 4))
[ "$detect" -le $((fail_s - 6)) ] || detect=$((fail_s - 6))
[ "$detect" -ge $((fail_s / 2)) ] || detect=$((fail_s / 2))
quarter=$((detect / 4 > 0 ? detect / 4 : 1))

mpi_flags=(--hostfile "$hostfile" -np "$ranks" --map-by slot
  --mca oob_tcp_keepalive_time "$quarter" --mca oob_tcp_keepalive_intvl "$quarter"
  --mca oob_tcp_keepalive_probes 3)
[ "$(id -u)" -eq 0 ] && mpi_flags+=(--allow-run-as-root)
# shellcheck disable=SC2206 # word splitting is the documented interface
mpi_flags+=(${MEMLLM_MPIRUN_ARGS:-})
# The coordinator watches the ranks' heartbeats with the same bound.
env_flags=(-x GOMP_SPINCOUNT="${GOMP_SPINCOUNT:-10000}" -x MEMLLM_FAIL_SECONDS="$fail_s")
[ -z "${MEMLLM_THREADS:-}" ] || env_flags+=(-x OMP_NUM_THREADS="$MEMLLM_THREADS")
[ -z "${MEMLLM_MODELS_DIR:-}" ] || env_flags+=(-x MEMLLM_MODELS_DIR="$MEMLLM_MODELS_DIR")
# P = 0 for the memory's own commands (memory, edit), which have no stages.
layout=()
[ "$stages" -eq 0 ] || layout+=(--stages "$stages")
[ "$shards" -eq 0 ] || layout+=(--memshards "$shards")
# mpirun's messages go to stderr as they come, and to a copy read if the
# job fails.
errors=$(mktemp "${TMPDIR:-/tmp}/memllm-run-hosts.XXXXXX")
trap 'rm -f "$errors"' EXIT
# (stdout to the saved fd 3, stderr through the pipe; pipefail gives
# mpirun's status.) tee ignores Ctrl-C: mpirun, stopping the job on it,
# still has messages to write, and a closed pipe would kill it midway.
status=0
{ mpirun "${mpi_flags[@]}" "${env_flags[@]}" "$bin" "$@" "${layout[@]}" 2>&1 1>&3 3>&- |
  (trap '' INT TERM && exec tee "$errors" >&2 3>&-); } 3>&1 || status=$?
if [ "$status" -ne 0 ]; then
  # "Remote daemon: [[J,0],D] on node H": the host Open MPI lost.
  sed -n 's/^ *Remote daemon: .* on node \([^ ]*\).*/\1/p' "$errors" | sort -u |
    while read -r host; do
      echo "run-hosts.sh: lost host $host, which ran:$(awk -v h="$host:" '$1 == h { $1 = ""; print }' \
        <<<"$roles")" >&2
    done
  printf 'run-hosts.sh: the job failed (mpirun exit %s); the hosts ran:\n%s\n' "$status" "$roles" >&2
fi
exit "$status"
