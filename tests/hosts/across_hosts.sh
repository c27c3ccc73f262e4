#!/usr/bin/env bash
# memllm across three hosts (network namespaces on this machine, made by
# tests/hosts/hosts.sh), launched the documented way: deploy/run-hosts.sh
# with deploy/hostfile.example's layout (the coordinator on host 1, the 2
# stages on host 2, the 2 memory shards on host 3; its host names replaced
# by the test's), Open MPI starting its daemons through
# tests/hosts/rsh-agent.sh and moving every message over TCP on the test's
# subnet only. Each job must give what the same job gives in one process:
#   annotate  the MW adapter annotates a Re-DocRED document: the same dump;
#   generate  the MR adapter answers questions reading that memory: the same
#             JSONL results, reads and their answers included, each read's
#             latency aside (present, > 0 at each shard, and printed);
#   edit      a batch of edits: the same summary and dump; its undo gives
#             back the memory as it was, times included.
# And the traffic is TCP: each host's ranks are where the hostfile puts
# them, the stage host's interface carried the stage-to-coordinator
# traffic, and with no BTL but "self" the same job cannot start.
# Exits 77 (ctest: skipped) where network namespaces cannot be made
# (tests/hosts/setup.sh).
set -euo pipefail
# shellcheck source=tests/hosts/setup.sh
. "$(dirname "$0")/setup.sh"

failures=0
fail() {
  echo "across_hosts: FAIL: $*"
  failures=$((failures + 1))
}

eth0_bytes() {
  "$hosts" exec "$state" "$1" cat /sys/class/net/eth0/statistics/rx_bytes \
    /sys/class/net/eth0/statistics/tx_bytes | paste -sd' '
}
# Runs "$@", saving stdout and stderr under $work/NAME; the steps after a
# job that failed would only fail for want of its results, so it ends here.
run() {
  local name=$1 status=0
  shift
  "$@" >"$work/$name.out" 2>"$work/$name.err" || status=$?
  [ "$status" -eq 0 ] && return 0
  echo "across_hosts: FAIL: $name exited $status:"
  tail -20 "$work/$name.err"
  exit 1
}
dump() { "$bin" memory dump --copies --memory "$@"; }

# 1. annotate: the demo's document (deploy/demo.sh) into a fresh memory.
doc=$root/deploy/demo/raymond-hermantier.txt
mw=(--model "$model" --adapter "mw=$root/adapters/smollm2-135m-mw")
start=$SECONDS
run annotate-one "$bin" annotate "$doc" "${mw[@]}" --memory "$work/one" --memshards 2
one_s=$((SECONDS - start))
start=$SECONDS
run annotate-hosts across "$work/hostfile" 2 2 annotate "$doc" "${mw[@]}" --memory "$work/hosts-mem"
echo "across_hosts: annotate in one process ${one_s}s, across hosts $((SECONDS - start))s"
dump "$work/one" >"$work/one.dump"
dump "$work/hosts-mem" >"$work/hosts.dump"
[ -s "$work/one.dump" ] || fail "the one-process annotate wrote no facts"
cmp -s "$work/one.dump" "$work/hosts.dump" ||
  fail "annotate across hosts gave another memory: $(diff "$work/one.dump" "$work/hosts.dump")"

# 2. generate with memory reads, on the one-process memory (provenance
# times are part of the results). Questions about the document's facts.
for q in "The date of birth of Raymond Hermantier is " "Raymond Hermantier died on " \
  "General Charles de Gaulle was born in "; do
  python3 -c 'import json, sys; print(json.dumps({"prompt": sys.argv[1], "max_tokens": 40,
    "greedy": True, "stop": ["\n", " ."]}))' "$q"
done >"$work/questions.jsonl"
mr=(--model "$model" --adapter "mr=$root/adapters/smollm2-135m-mr" --memory "$work/one"
  --input "$work/questions.jsonl")
run generate-one "$bin" generate "${mr[@]}" --output "$work/generate-one.jsonl"
grep -q '"outcome":"answered"' "$work/generate-one.jsonl" ||
  fail "no read answered from the memory in one process: $(cat "$work/generate-one.jsonl")"
before=$(eth0_bytes 2)
# Open MPI's map of the job (stdout; the results go to --output).
extra_mpi_args=--display-map
run generate-hosts across "$work/hostfile" 2 2 generate "${mr[@]}" \
  --output "$work/generate-hosts.jsonl"
extra_mpi_args=
after=$(eth0_bytes 2)
# Each read's latency (its round trips to the 2 shards: over TCP to host 3
# here, the shards' own handling in one process) is the one field that
# differs; every read that queried must carry it, > 0. The rest must be
# the same byte for byte.
for layout in one hosts; do
  python3 "$root/tests/hosts/without_latency.py" "$work/generate-$layout.jsonl" 2 \
    "across_hosts: memory reads ($layout)" >"$work/generate-$layout.trace" ||
    fail "generate ($layout): a read without its latency"
done
cmp -s "$work/generate-one.trace" "$work/generate-hosts.trace" ||
  fail "generate across hosts printed other results: $(diff "$work/generate-one.trace" \
    "$work/generate-hosts.trace")"
echo "across_hosts: memory reads in one process: $(grep '^reads:' "$work/generate-one.err")"
echo "across_hosts: memory reads across hosts: $(grep '^reads:' "$work/generate-hosts.err")"

# Where the ranks ran (the first map Open MPI printed): by role, as the
# hostfile says.
placement=$(awk '/Data for node:/ { node = $4 }
  /Process rank:/ { for (i = 1; i < NF; i++) if ($i == "rank:") print $(i + 1), node }' \
  "$work/generate-hosts.out" | sort -un)
want=$(printf '%s\n' "0 ${names[0]}" "1 ${names[1]}" "2 ${names[1]}" "3 ${names[2]}" \
  "4 ${names[2]}")
[ "$placement" = "$want" ] || fail "ranks placed as
$placement
instead of
$want"
# Stage 2 on host 2 sends the coordinator on host 1 a row of logits per
# generated token (tens of MB here): it must have crossed host 2's eth0. A
# BTL over shared memory would leave only Open MPI's control traffic, a
# few KB.
read -r _ tx0 <<<"$before"
read -r _ tx1 <<<"$after"
sent=$((tx1 - tx0))
echo "across_hosts: host 2 sent $sent bytes over eth0 during generate"
[ "$sent" -ge 1000000 ] || fail "host 2 sent only $sent bytes over eth0: not the stages' traffic"
# No BTL but "self": the hosts cannot reach each other, so the passing
# jobs had nothing but TCP between hosts.
btl=self
if across "$work/hostfile" 2 2 generate "${mr[@]}" --output "$work/self.jsonl" \
  >"$work/self.out" 2>&1; then
  fail "a job with --mca btl self ran across hosts"
elif ! grep -q 'unable to reach each other' "$work/self.out"; then
  fail "a job with --mca btl self failed, but not for want of a BTL: $(tail -5 "$work/self.out")"
fi
btl="tcp,self"

# 3. edit: a batch on copies of the memory, in one process and across hosts
# (the coordinator and the 2 shards), then its undo across hosts.
cat >"$work/edits.jsonl" <<'EOF'
{"op": "add", "fact": "Raymond Hermantier>>occupation>>actor"}
{"op": "replace", "fact": "Raymond Hermantier>>place of birth>>Lyon"}
{"op": "replace", "fact": "General Charles de Gaulle>>place of birth>>Lille"}
{"op": "delete", "fact": "Belgium>>located in the administrative territorial entity>>Belgium"}
{"op": "add", "fact": "Raymond Hermantier>>date of birth>>13 January 1924"}
EOF
cp -a "$work/one" "$work/edit-one"
cp -a "$work/one" "$work/edit-hosts"
dump "$work/one" --times >"$work/before-edit.dump"
run edit-one "$bin" edit "$work/edits.jsonl" --memory "$work/edit-one"
run edit-hosts across "$work/hostfile-shards" 0 2 edit "$work/edits.jsonl" --memory "$work/edit-hosts"
# The batch ids differ (they are made of the time); the counts must not.
grep -v '^batch: ' "$work/edit-one.out" >"$work/edit-one.summary"
grep -v '^batch: ' "$work/edit-hosts.out" >"$work/edit-hosts.summary"
cmp -s "$work/edit-one.summary" "$work/edit-hosts.summary" ||
  fail "edit across hosts: $(cat "$work/edit-hosts.out"), in one process: $(cat "$work/edit-one.out")"
sed "s/edit:[^ ]* /edit /" <(dump "$work/edit-one") >"$work/edit-one.dump"
sed "s/edit:[^ ]* /edit /" <(dump "$work/edit-hosts") >"$work/edit-hosts.dump"
cmp -s "$work/edit-one.dump" "$work/edit-hosts.dump" ||
  fail "edit across hosts gave another memory: $(diff "$work/edit-one.dump" "$work/edit-hosts.dump")"
cmp -s "$work/edit-one.dump" <(sed "s/edit:[^ ]* /edit /" "$work/one.dump") &&
  fail "the edits changed nothing"
batch=$(sed -n 's/^batch: //p' "$work/edit-hosts.out")
run undo-hosts across "$work/hostfile-shards" 0 2 edit --undo "$batch" --memory "$work/edit-hosts"
cmp -s "$work/before-edit.dump" <(dump "$work/edit-hosts" --times) ||
  fail "undo across hosts: $(diff "$work/before-edit.dump" <(dump "$work/edit-hosts" --times))"

[ "$failures" -eq 0 ] || exit 1
echo "across_hosts: annotate, generate and edit across 3 hosts over TCP: as in one process"
