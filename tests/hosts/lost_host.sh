#!/usr/bin/env bash
# A job across hosts (tests/hosts/setup.sh: deploy/run-hosts.sh with
# deploy/hostfile.example on three network namespaces) that loses a host
# stops by itself within deploy/run-hosts.sh's bound (MEMLLM_FAIL_SECONDS,
# default 30 s), exits non-zero with run-hosts.sh's list of each host's
# roles, and leaves no daemon or rank running on any host:
#   partition  host 2 (the stages) unplugged from the switch mid-job: no
#              FIN, no RST, only silence; the job's error names the host
#              and its roles;
#   dead host  every process of host 3 (the shards' daemon and ranks)
#              SIGKILLed mid-job. Open MPI names the host or not, depending
#              on whether it first sees the daemon's connection close or
#              its launcher (ssh here: the agent) exit;
#   hung rank  stage 0's rank on host 2 SIGSTOPped mid-job (alive, its
#              host up, answering nothing): the coordinator's heartbeat
#              watch stops the job, naming the stage, its rank and host.
# The cases above run at the default bound; those below set it lower (the
# option), which keeps them short:
#   hung shard the same with memory shard 0's rank on host 3 (bound 12 s);
#   annotate   the shards' host dies (SIGKILL, as above) once a document
#              is done (bound 10 s);
#   annotate partition
#              the shards' host is unplugged once a document is done, and
#              plugged back in after the job stopped (bound 10 s).
#              After either, both copies of every fact of the finished
#              documents are kept, and the job resumed across the hosts
#              ends with the memory an uninterrupted run in one process
#              writes (dump of both copies; verify clean, nothing repaired).
# Exits 77 (ctest: skipped) where network namespaces cannot be made.
set -euo pipefail
# shellcheck source=tests/hosts/setup.sh
. "$(dirname "$0")/setup.sh"
bound=30

failures=0
fail() {
  echo "lost_host: FAIL: $*"
  failures=$((failures + 1))
}

# deploy/hostfile.example with 2 stages and 2 shards: host I's ranks, and
# what deploy/run-hosts.sh says they are.
host_ranks=(0 "1 2" "3 4")
host_roles=("coordinator (rank 0)" "stage 0 (rank 1), stage 1 (rank 2)"
  "memory shard 0 (rank 3), memory shard 1 (rank 4)")
# Rank R as the coordinator's heartbeat watch names it (roles counted from
# 0, as memllm's other messages count them).
watch_role() {
  if [ "$1" -le 2 ]; then echo "stage $(($1 - 1))"; else echo "memory shard $(($1 - 3))"; fi
}

# Far more work than the test lasts: 2000 requests of 200 tokens, after a
# first one of 1 token whose result says that the job is generating.
{
  echo '{"prompt": "Once upon a time", "max_tokens": 1}'
  for i in $(seq 1 2000); do echo "{\"prompt\": \"Once upon a time $i\", \"max_tokens\": 200}"; done
} >"$work/requests.jsonl"
"$bin" memory write "Paris>>capital of>>France" --memory "$work/memory" --memshards 2 \
  --embedder fallback >/dev/null

# The processes left in host I's namespace, by name.
left_on() {
  local p
  for p in $(ip netns pids "${names[$1 - 1]}"); do cat "/proc/$p/comm" 2>/dev/null || true; done |
    paste -sd' '
}

# lose NAME I HOW READY JOB-ARGS...: runs deploy/run-hosts.sh JOB-ARGS from
# host 1 (output in $work/NAME.out and .err), takes host I away (HOW:
# "partition" or "kill"; or "hang": SIGSTOPs its first rank) once every
# rank runs and the file READY is not empty (the job is under way), and
# checks the job ends within the bound, with nothing left running anywhere.
lose() {
  local name=$1 i=$2 how=$3 ready=$4 job start=$SECONDS t0 waited ms status=0 h r rest
  local host=${names[$2 - 1]} first=${host_ranks[$2 - 1]%% *}
  shift 4
  across "$@" >"$work/$name.out" 2>"$work/$name.err" &
  job=$!
  # Host 2: the agent's shell, orted and the 2 stages; host 3: the same
  # with the 2 shards.
  for _ in $(seq 1 600); do
    [ "$(left_on 2 | grep -o memllm | wc -l)" -eq 2 ] &&
      [ "$(left_on 3 | grep -o memllm | wc -l)" -eq 2 ] && [ -s "$ready" ] && break
    kill -0 "$job" 2>/dev/null || break
    sleep 0.1
  done
  if ! kill -0 "$job" 2>/dev/null || [ ! -s "$ready" ]; then
    fail "$name: the job did not get going, or ended first: $(tail -5 "$work/$name.err")"
    return
  fi
  echo "lost_host: $name: mid-job $((SECONDS - start))s after the start"
  local what="host $i was lost"
  [ "$how" != hang ] || what="host $i's rank $first ($(watch_role "$first")) was stopped"
  t0=$SECONDS
  ms=$(date +%s%3N)
  case $how in
    partition) "$hosts" link "$state" "$i" down ;;
    kill)
      # shellcheck disable=SC2046 # one pid a word
      kill -9 $(ip netns pids "$host")
      ;;
    hang)
      for h in $(ip netns pids "$host"); do
        ! tr '\0' '\n' 2>/dev/null <"/proc/$h/environ" | grep -qx "OMPI_COMM_WORLD_RANK=$first" ||
          kill -STOP "$h"
      done
      ;;
  esac
  # Twice the bound before the test gives up on it: a hang is a failure,
  # and then everything on the hosts is killed (and the host plugged back
  # in), so that the next case starts from nothing.
  while kill -0 "$job" 2>/dev/null && [ $((SECONDS - t0)) -lt $((2 * bound)) ]; do sleep 0.2; done
  waited=$((SECONDS - t0))
  if kill -0 "$job" 2>/dev/null; then
    fail "$name: the job still ran ${waited}s after $what"
    for h in "${names[@]}"; do
      # shellcheck disable=SC2046 # one pid a word
      kill -9 $(ip netns pids "$h") 2>/dev/null || true
    done
    [ "$how" != partition ] || "$hosts" link "$state" "$i" up
    return
  fi
  # In milliseconds: whole seconds would blur a bound of 10 s by 10%.
  ms=$(($(date +%s%3N) - ms))
  wait "$job" || status=$?
  waited=$((ms / 1000)).$((ms % 1000 / 100))
  echo "lost_host: $name: the job stopped ${waited}s after $what (exit $status; bound ${bound}s)"
  [ "$status" -ne 0 ] || fail "$name: the job exited 0 after $what"
  [ "$ms" -le $((bound * 1000)) ] || fail "$name: the job took ${waited}s to stop, more than ${bound}s"
  # Open MPI names the host it lost, and run-hosts.sh what ran there; or,
  # as the partition silences the host's ranks too, the coordinator's
  # heartbeat watch may see it first, naming a rank there and its role.
  if [ "$how" = partition ]; then
    local named line
    named=$(grep -x "run-hosts.sh: lost host $host, which ran: ${host_roles[$i - 1]}" \
      "$work/$name.err") || true
    for r in ${host_ranks[$i - 1]}; do
      line=$(grep "^memllm: $(watch_role "$r") (rank $r on host $host) has not answered" \
        "$work/$name.err") && named+="${named:+; }$line"
    done
    if [ -n "$named" ]; then
      echo "lost_host: $name: named by: $named"
    else
      fail "$name: no line names host $i ($host) and its roles (${host_roles[$i - 1]}):" \
        "$(tail -5 "$work/$name.err")"
    fi
  fi
  # The stopped rank, by role, rank and host, and the bound it exceeded.
  local stopped
  stopped="$(watch_role "$first") (rank $first on host $host) has not answered"
  [ "$how" != hang ] || grep -q "^memllm: $stopped.*MEMLLM_FAIL_SECONDS=$bound)" "$work/$name.err" ||
    fail "$name: no line says '$stopped' with the bound ($bound): $(tail -5 "$work/$name.err")"
  # run-hosts.sh's own line for the host: its name and roles.
  grep -q "^  $host: .*rank" "$work/$name.err" ||
    fail "$name: no line gives host $i's roles: $(tail -5 "$work/$name.err")"
  # The surviving hosts' ranks and daemons are gone with the job; the lost
  # host's daemon, cut off too, kills its ranks once it misses mpirun
  # (within the bound).
  for h in 1 2 3; do
    for _ in $(seq 1 $((5 * bound))); do
      [ -n "$(left_on "$h")" ] || break
      sleep 0.2
    done
    rest=$(left_on "$h")
    [ -z "$rest" ] || fail "$name: left running on host $h: $rest"
  done
  echo "lost_host: $name: nothing left on any host $((SECONDS - t0))s after $what"
  [ "$how" != partition ] || "$hosts" link "$state" "$i" up
}

generate=(generate --model "$model" --memory "$work/memory" --input "$work/requests.jsonl")
# The first result out: the job is generating.
lose partition 2 partition "$work/partition.out" "$work/hostfile" 2 2 "${generate[@]}"
lose dead-host 3 kill "$work/dead-host.out" "$work/hostfile" 2 2 "${generate[@]}"
lose hung-rank 2 hang "$work/hung-rank.out" "$work/hostfile" 2 2 "${generate[@]}"

# The rest with the bound set lower (the option, which run-hosts.sh passes
# on to Open MPI's keepalives and to the coordinator's watch), which keeps
# them short. A stopped rank at 12 s: the watch then stops the job after
# 6 s, leaving Open MPI the 3.5-4.4 s it takes to end the ranks across
# hosts (heartbeat.c, STOP_SECONDS); at 10 s that would be 5 s and 4.4 s,
# too close to the bound to measure it reliably.
bound=12
export MEMLLM_FAIL_SECONDS=$bound
lose hung-shard 3 hang "$work/hung-shard.out" "$work/hostfile" 2 2 "${generate[@]}"
bound=10
export MEMLLM_FAIL_SECONDS=$bound

# annotate loses the shards' host once a document is done: what was
# acknowledged is there, and the job resumed across the hosts reaches the
# memory of an uninterrupted run in one process, both copies of every fact.
python3 - "$work/corpus.jsonl" <<'PY'
import json, sys
capitals = [[("Paris", "France"), ("Rome", "Italy"), ("Berlin", "Germany")],
            [("Madrid", "Spain"), ("Vienna", "Austria"), ("Oslo", "Norway")],
            [("Athens", "Greece"), ("Warsaw", "Poland"), ("Prague", "Czechia")],
            [("Tokyo", "Japan"), ("Seoul", "South Korea"), ("Cairo", "Egypt")]]
with open(sys.argv[1], "w") as f:
    for k, doc in enumerate(capitals):
        text = " ".join(f"{city} is the capital of {country}." for city, country in doc)
        f.write(json.dumps({"id": f"capitals-{k}", "text": text}) + "\n")
PY
# annotate_args DIR: the job's arguments, into $args.
annotate_args() {
  args=(annotate "$work/corpus.jsonl" --model "$model"
    --adapter "mw=$root/adapters/smollm2-135m-mw" --memory "$1" --embedder fallback
    --batch 4 --max-tokens 32)
}
annotate_args "$work/reference"
"$bin" "${args[@]}" --memshards 2 >/dev/null 2>"$work/reference.err" ||
  { echo "lost_host: FAIL: annotate in one process: $(tail -5 "$work/reference.err")"; exit 1; }
"$bin" memory dump --copies --memory "$work/reference" >"$work/reference.dump"

# Each copy of a fact in a `memory dump --copies` (its provenance, the last
# field, cut off): what a kept write must still have.
copies() { sed 's/\t[^\t]*$//' | sort -u; }

# lose_annotate NAME HOW: annotate into $work/NAME loses host 3 (lose's
# HOW) once a document is done; then, with the host back, every copy of the
# finished documents' facts is there, and the job resumed reaches the
# reference memory. Nothing is repaired: a fact of an unfinished document
# that lost a copy with the host is written again by the resumed job.
lose_annotate() {
  local name=$1 how=$2 dir=$work/$1 finished id lost
  annotate_args "$dir"
  lose "$name" 3 "$how" "$dir/annotate.done" "$work/hostfile" 2 2 "${args[@]}"
  [ -s "$dir/annotate.done" ] || return 0 # lose said why
  finished=$(wc -l <"$dir/annotate.done")
  echo "lost_host: $name: $finished of 4 documents done when host 3 was lost"
  [ "$finished" -lt 4 ] || fail "$name: every document was done before host 3 was lost"
  # What the loss left, for the log: an unfinished write may lack a copy.
  "$bin" memory verify --memory "$dir" >"$work/$name.verify" 2>&1 || true
  echo "lost_host: $name: after the loss, $(paste -sd' ' "$work/$name.verify")"
  "$bin" memory dump --copies --memory "$dir" | copies >"$work/$name.kept"
  while read -r id; do
    lost=$(grep -P "\t(.*; )?$id #" "$work/reference.dump" | copies | comm -23 - "$work/$name.kept")
    [ -z "$lost" ] || fail "$name: copies of the facts of $id, a finished document, lost: $lost"
  done <"$dir/annotate.done"
  if across "$work/hostfile" 2 2 "${args[@]}" >"$work/$name-resume.out" \
    2>"$work/$name-resume.err"; then
    grep -qx "already_done: $finished" "$work/$name-resume.out" ||
      fail "$name resumed: not 'already_done: $finished': $(cat "$work/$name-resume.out")"
    "$bin" memory verify --memory "$dir" >"$work/$name.verify" 2>&1 ||
      fail "$name resumed: verify: $(cat "$work/$name.verify")"
    "$bin" memory dump --copies --memory "$dir" >"$work/$name.dump"
    cmp -s "$work/reference.dump" "$work/$name.dump" ||
      fail "$name resumed: $(diff "$work/reference.dump" "$work/$name.dump")"
  else
    fail "$name resumed across hosts: $(grep -v '^ *$' "$work/$name-resume.err" | tail -20)"
  fi
}
lose_annotate annotate kill
lose_annotate annotate-partition partition

[ "$failures" -eq 0 ] || exit 1
echo "lost_host: a partitioned or dead host, or a stopped stage or shard rank, stops the job" \
  "within its bound, nothing left running;"
echo "lost_host: annotate resumed after a dead or partitioned shard host reaches the" \
  "uninterrupted memory"
