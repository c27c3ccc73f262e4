#!/usr/bin/env bash
# Several "hosts" on this machine for the tests of memllm across hosts: one
# network namespace per host, each with its own loopback and one interface
# (eth0, 10.77.0.I/24 for host I) cabled by a veth pair to a bridge that
# lives in a namespace of its own (the "switch"). Nothing is added to the
# machine's own network namespace, so parallel runs cannot collide; the
# namespace names carry a per-run prefix.
#
#   hosts.sh check                 exit 0 if namespaces can be made here, else
#                                  print "SKIP: ..." and exit 77
#   hosts.sh up N STATE            make N hosts (2..9); STATE (a new or empty
#                                  directory) records them: STATE/hosts has one
#                                  "NAME ADDRESS" line per host, in order
#   hosts.sh down STATE            kill every process left in the hosts'
#                                  namespaces, delete them and STATE/hosts
#                                  ('up' also removes the hosts of callers
#                                  that died without 'down')
#   hosts.sh exec STATE I CMD...   run CMD on host I (1-based), as root, with
#                                  the host's name as its hostname
#   hosts.sh link STATE I up|down  cable host I to the switch (and wait
#                                  until host 1 reaches it), or unplug it
#
# The host names are the namespace names; tests/hosts/rsh-agent.sh runs
# Open MPI's daemons inside them. All hosts share this machine's filesystem.
set -euo pipefail

subnet=10.77.0
skip=77

usage() {
  sed -n '9,24p' "$0" >&2
  exit 2
}

# Why namespaces cannot be made here, or nothing.
why_not() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "not root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)"
  elif ! command -v ip >/dev/null; then
    echo "no 'ip' command (iproute2)"
  elif ! command -v unshare >/dev/null; then
    echo "no 'unshare' command (util-linux)"
  else
    # A probe namespace: creating one is the only sure test of the rights.
    local probe="mmh-probe-$$-$RANDOM" err
    if ! err=$(ip netns add "$probe" 2>&1); then
      echo "'ip netns add' fails: $err"
    elif ! err=$(ip netns exec "$probe" ip link add p0 type veth peer name p1 2>&1); then
      ip netns del "$probe"
      echo "no veth pairs in a namespace: $err"
    elif ! err=$(ip netns exec "$probe" ip link add br0 type bridge 2>&1); then
      ip netns del "$probe"
      echo "no bridge in a namespace: $err"
    else
      ip netns del "$probe"
    fi
  fi
}

# The namespaces a STATE records, switch last.
state_names() {
  local state=$1
  [ ! -f "$state/hosts" ] || awk '{ print $1 }' "$state/hosts"
  [ ! -f "$state/switch" ] || cat "$state/switch"
}

host_name() {
  local state=$1 i=$2 name
  name=$(awk -v i="$i" 'NR == i { print $1 }' "$state/hosts")
  [ -n "$name" ] || { echo "hosts.sh: no host $i in $state" >&2; exit 2; }
  echo "$name"
}

# Whatever still runs in a host (a hung mpirun, orted, ranks) dies with it:
# a namespace is only freed once its processes are gone.
remove_ns() {
  local ns=$1 pids
  pids=$(ip netns pids "$ns" 2>/dev/null || true)
  # shellcheck disable=SC2086 # one pid a word
  [ -z "$pids" ] || kill -9 $pids 2>/dev/null || true
  ip netns del "$ns" 2>/dev/null || true
}

cmd_down() {
  local state=$1 ns
  for ns in $(state_names "$state"); do
    remove_ns "$ns"
  done
  rm -f "$state/hosts" "$state/switch"
}

# The hosts of earlier runs whose owner died before 'down' (a test killed
# with SIGKILL runs no trap): the owner's pid is in their names.
reap_orphans() {
  local ns owner
  for ns in $(ip netns list | awk '$1 ~ /^mmh[0-9]+r[0-9]+-/ { print $1 }'); do
    owner=${ns#mmh}
    owner=${owner%%r*}
    kill -0 "$owner" 2>/dev/null || remove_ns "$ns"
  done
}

cmd_up() {
  local n=$1 state=$2 i prefix sw name
  [[ $n =~ ^[2-9]$ ]] || usage
  mkdir -p "$state"
  [ ! -e "$state/hosts" ] || { echo "hosts.sh: $state has hosts already" >&2; exit 2; }
  reap_orphans
  # Short and unique per run: host names double as hostnames (64 bytes) and
  # Open MPI prints them in its messages. The owner is the caller (the test),
  # which outlives this script.
  prefix="mmh${PPID}r$RANDOM"
  sw="$prefix-sw"
  # Recorded before each namespace exists, so a failure half-way is cleaned
  # up by 'down' like a complete set.
  echo "$sw" >"$state/switch"
  : >"$state/hosts"
  ip netns add "$sw"
  ip -n "$sw" link set lo up
  ip -n "$sw" link add br0 type bridge
  ip -n "$sw" link set br0 up
  for i in $(seq 1 "$n"); do
    name="$prefix-$i"
    echo "$name $subnet.$i" >>"$state/hosts"
    ip netns add "$name"
    ip -n "$name" link set lo up
    # Both ends made where they live: no name in this machine's namespace.
    ip -n "$name" link add eth0 type veth peer name "port$i" netns "$sw"
    ip -n "$sw" link set "port$i" master br0 up
    ip -n "$name" addr add "$subnet.$i/24" dev eth0
    ip -n "$name" link set eth0 up
  done
  # Host 1 reaches every other through the switch before any test runs.
  for i in $(seq 2 "$n"); do
    reachable "$prefix-1" "$i" || exit 1
  done
}

# Whether host I answers from namespace NS: a TCP connection to a closed
# port is refused by a host that is there (within 5 s).
reachable() {
  local ns=$1 i=$2 err
  err=$(ip netns exec "$ns" timeout 5 bash -c "exec 3<>/dev/tcp/$subnet.$i/9" 2>&1) || true
  [[ $err == *refused* ]] || { echo "hosts.sh: $ns cannot reach $subnet.$i: $err" >&2; return 1; }
}

cmd_link() {
  local state=$1 i=$2 updown=$3
  [[ $updown == up || $updown == down ]] || usage
  ip -n "$(host_name "$state" "$i")" link set eth0 "$updown"
  # Plugged back in: done once host 1 reaches it again (a job started at
  # once must find the network as it was).
  [ "$updown" = down ] || [ "$i" -eq 1 ] || reachable "$(host_name "$state" 1)" "$i"
}

[ $# -ge 1 ] || usage
case "$1" in
  check)
    reason=$(why_not)
    [ -z "$reason" ] || { echo "SKIP: cannot make network namespaces: $reason"; exit $skip; }
    ;;
  up) [ $# -eq 3 ] || usage; cmd_up "$2" "$3" ;;
  down) [ $# -eq 2 ] || usage; cmd_down "$2" ;;
  exec)
    [ $# -ge 4 ] || usage
    ns=$(host_name "$2" "$3")
    shift 3
    # A UTS namespace of its own: mpirun there knows the host by its name.
    # shellcheck disable=SC2016 # expanded by the inner shell
    exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$ns" "$@"
    ;;
  link) [ $# -eq 4 ] || usage; cmd_link "$2" "$3" "$4" ;;
  *) usage ;;
esac
