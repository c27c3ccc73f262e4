# shellcheck shell=bash disable=SC2034 # sourced: its variables are the tests'
# Sourced by the tests of memllm across hosts (bash, set -euo pipefail):
# three hosts from tests/hosts/hosts.sh, deploy/hostfile.example on them,
# and `across`, which runs deploy/run-hosts.sh from host 1 the way the tests
# run it. Exits 77 (ctest: skipped) where network namespaces cannot be made.
# Sets: root bin model hosts work state names[] subnet; $work/hostfile and
# $work/hostfile-shards; btl and extra_mpi_args, read by `across`.
#   MEMLLM_BIN, MEMLLM_MODELS_DIR: as the other tests get them.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin=${MEMLLM_BIN:?run under ctest}
model=${MEMLLM_MODELS_DIR:?run under ctest}/SmolLM2-135M-Instruct.Q4_1.gguf
hosts=$root/tests/hosts/hosts.sh
"$hosts" check
work=$(mktemp -d "${TMPDIR:-/tmp}/memllm-hosts.XXXXXX")
state=$work/hosts
# Whatever happens, the hosts and anything still running on them go.
trap '"$hosts" down "$state"; rm -rf "$work"' EXIT
"$hosts" up 3 "$state"
mapfile -t names < <(awk '{ print $1 }' "$state/hosts")
subnet=$(awk 'NR == 1 { sub(/\.[0-9]+$/, ".0/24", $2); print $2 }' "$state/hosts")

# deploy/hostfile.example with node0I replaced by host I's name; the memory's
# own commands (no stages) drop the stage host, as the example says.
awk -v names="${names[*]}" 'BEGIN { split(names, n, " ") }
  { for (i in n) gsub("node0" i, n[i]) } 1' "$root/deploy/hostfile.example" >"$work/hostfile"
grep -v "^${names[1]} " "$work/hostfile" >"$work/hostfile-shards"

# Over TCP on the test's subnet, and nothing else between ranks: no shared
# memory (vader, sm) even though all hosts share this machine. One rank per
# core is not what 5 ranks on a CI machine's 2 cores get: ranks yield the
# core while they wait, as Open MPI does by itself when it knows it is
# oversubscribed.
btl="tcp,self"
extra_mpi_args=
mpi_args() {
  echo "--mca plm_rsh_agent $root/tests/hosts/rsh-agent.sh --mca btl $btl" \
    "--mca btl_tcp_if_include $subnet --mca oob_tcp_if_include $subnet" \
    "--mca mpi_yield_when_idle 1 $extra_mpi_args"
}
# deploy/run-hosts.sh HOSTFILE P S ARGS... run on host 1, one thread a rank.
across() {
  MEMLLM_BIN=$bin MEMLLM_THREADS=1 MEMLLM_MPIRUN_ARGS="$(mpi_args)" \
    "$hosts" exec "$state" 1 "$root/deploy/run-hosts.sh" "$@"
}
