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
#   hung rank  stage 1's rank on host 2 SIGSTOPped mid-job (alive, its
#              host up, answering nothing): the coordinator's heartbeat
#              watch stops the job, naming the stage, its rank and host;
#   annotate   the shards' host dies the same way once a document is done:
#              the finished documents' facts are kept, and the job resumed
#              across the hosts ends with the memory an uninterrupted run
#              in one process writes (dump of both copies; verify clean).
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
  local name=$1 i=$2 how=$3 ready=$4 job start=$SECONDS t0 waited status=0 h rest
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
  [ "$how" != hang ] || what="host $i's rank 1 was stopped"
  t0=$SECONDS
  case $how in
    partition) "$hosts" link "$state" "$i" down ;;
    kill)
      # shellcheck disable=SC2046 # one pid a word
      kill -9 $(ip netns pids "${names[$i - 1]}")
      ;;
    hang)
      for h in $(ip netns pids "${names[$i - 1]}"); do
        ! tr '\0' '\n' 2>/dev/null <"/proc/$h/environ" | grep -qx 'OMPI_COMM_WORLD_RANK=1' ||
          kill -STOP "$h"
      done
      ;;
  esac
  # Twice the bound before the test gives up on it: a hang is a failure,
  # and the hosts' 'down' kills whatever is left.
  while kill -0 "$job" 2>/dev/null && [ $((SECONDS - t0)) -lt $((2 * bound)) ]; do sleep 0.2; done
  waited=$((SECONDS - t0))
  if kill -0 "$job" 2>/dev/null; then
    fail "$name: the job still ran ${waited}s after $what"
    return
  fi
  wait "$job" || status=$?
  echo "lost_host: $name: the job stopped ${waited}s after $what (exit $status)"
  [ "$status" -ne 0 ] || fail "$name: the job exited 0 after $what"
  [ "$waited" -le "$bound" ] || fail "$name: the job took ${waited}s to stop, more than ${bound}s"
  # Open MPI names the host it lost, and run-hosts.sh what ran there; or,
  # as the partition silences the host's ranks too, the coordinator's
  # heartbeat watch may see it first, naming a rank there and its role.
  local silent="rank [0-9]+ on host ${names[$i - 1]}\) has not answered"
  [ "$how" != partition ] ||
    grep -qx "run-hosts.sh: lost host ${names[$i - 1]}, which ran: $roles" "$work/$name.err" ||
    grep -Eq "^memllm: stage [0-9]+ \($silent" "$work/$name.err" ||
    fail "$name: no line names host $i (${names[$i - 1]}) and its roles ($roles):" \
      "$(tail -5 "$work/$name.err")"
  [ "$how" != hang ] ||
    grep -q "^memllm: stage 0 (rank 1 on host ${names[$i - 1]}) has not answered" "$work/$name.err" ||
    fail "$name: no line names stage 0, its rank 1 and host $i (${names[$i - 1]}):" \
      "$(tail -5 "$work/$name.err")"
  # run-hosts.sh's own line for the host: its name and roles.
  grep -q "^  ${names[$i - 1]}: .*rank" "$work/$name.err" ||
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
roles="stage 1 (rank 1), stage 2 (rank 2)"
lose partition 2 partition "$work/partition.out" "$work/hostfile" 2 2 "${generate[@]}"
lose dead-host 3 kill "$work/dead-host.out" "$work/hostfile" 2 2 "${generate[@]}"
lose hung-rank 2 hang "$work/hung-rank.out" "$work/hostfile" 2 2 "${generate[@]}"

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
done_file=$work/resumed/annotate.done
annotate_args "$work/resumed"
lose annotate 3 kill "$done_file" "$work/hostfile" 2 2 "${args[@]}"
finished=$(wc -l <"$done_file")
echo "lost_host: annotate: $finished of 4 documents done when host 3 was lost"
[ "$finished" -lt 4 ] || fail "annotate: every document was done before host 3 was lost"
# A fact may have lost its second copy, on the other shard, with the host:
# verify --repair writes it back.
"$bin" memory verify --repair --memory "$work/resumed" >"$work/repair.out" 2>&1 ||
  fail "annotate: verify --repair after the loss: $(cat "$work/repair.out")"
"$bin" memory dump --memory "$work/resumed" | cut -f1 | sort >"$work/kept.facts"
while read -r id; do
  lost=$(grep -P "\t(.*; )?$id #" "$work/reference.dump" | cut -f1 | sort -u |
    comm -23 - "$work/kept.facts")
  [ -z "$lost" ] || fail "annotate: facts of $id, a finished document, lost: $lost"
done <"$done_file"
if across "$work/hostfile" 2 2 "${args[@]}" >"$work/resume.out" 2>"$work/resume.err"; then
  grep -qx "already_done: $finished" "$work/resume.out" ||
    fail "annotate resumed: not 'already_done: $finished': $(cat "$work/resume.out")"
  "$bin" memory verify --memory "$work/resumed" >"$work/verify.out" 2>&1 ||
    fail "annotate resumed: verify: $(cat "$work/verify.out")"
  "$bin" memory dump --copies --memory "$work/resumed" >"$work/resumed.dump"
  cmp -s "$work/reference.dump" "$work/resumed.dump" ||
    fail "annotate resumed: $(diff "$work/reference.dump" "$work/resumed.dump")"
else
  fail "annotate resumed across hosts: $(tail -5 "$work/resume.err")"
fi

[ "$failures" -eq 0 ] || exit 1
echo "lost_host: a partitioned or dead host, or a stopped rank, stops the job within ${bound}s, nothing left running;"
echo "lost_host: annotate resumed after it reaches the uninterrupted memory"
