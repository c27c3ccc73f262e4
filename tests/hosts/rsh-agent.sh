#!/usr/bin/env bash
# Open MPI's remote-shell agent for the hosts of tests/hosts/hosts.sh
# (mpirun --mca plm_rsh_agent tests/hosts/rsh-agent.sh): where ssh would log
# in to HOST and hand the command to its shell, this runs the command in
# HOST's network namespace, with HOST as its hostname (a UTS namespace of
# its own), so the daemon and the ranks it starts see only that host's
# network and name.
#
#   rsh-agent.sh HOST COMMAND-WORDS...
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: rsh-agent.sh HOST COMMAND..." >&2; exit 2; }
host=$1
shift
# ssh joins the words with spaces for the remote shell; Open MPI quotes them
# for that shell, so they are joined the same way here.
# shellcheck disable=SC2016 # expanded by the inner shell
exec ip netns exec "$host" unshare --uts sh -c 'hostname "$1" && exec sh -c "$2"' \
  rsh-agent "$host" "$*"
