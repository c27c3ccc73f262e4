#!/usr/bin/env bash
# deploy/slurm.sbatch under a real Slurm (issue 15): a one-node cluster
# from Debian's packages (munged, slurmctld, slurmd) with a generated
# slurm.conf, all in a temporary directory, on ports of its own; the test
# submits the script with `sbatch --wait` as the README says, 2 stages and
# 1 shard (4 ranks, on a node that may have fewer CPUs: the script
# overcommits), a generate whose MR adapter reads a memory, and checks that
# the job printed the layout of the script's hostfile and wrote the results
# the same command writes in one process. The daemons, the job and
# everything it started are gone when the test ends, whatever happens.
# Exits 77 (ctest: skipped), saying why, where Slurm cannot run: not root,
# no Slurm or munge installed (deploy/install-deps.sh installs them), or
# the daemons do not come up.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin=${MEMLLM_BIN:?run under ctest}
data=${MEMLLM_DATA:?run under ctest}
model=${MEMLLM_MODELS_DIR:?run under ctest}/SmolLM2-135M-Instruct.Q4_1.gguf
skip() {
  echo "slurm: SKIP: $*"
  exit 77
}
fail() {
  echo "slurm: FAIL: $*"
  exit 1
}
# slurmd runs a job as its submitter, and so must run as root.
[ "$(id -u)" -eq 0 ] || skip "not root (slurmd must run as root)"
for cmd in munged mungekey slurmctld slurmd sbatch scontrol sinfo; do
  command -v "$cmd" >/dev/null ||
    skip "no $cmd (deploy/install-deps.sh installs munge, slurmctld, slurmd, slurm-client)"
done
[ -f "$model" ] || skip "no $model (deploy/fetch-models.sh)"

work=$(mktemp -d "${TMPDIR:-/tmp}/memllm-slurm.XXXXXX")
conf=$work/slurm.conf
# Every process of this cluster, daemons, job steps and the job's ranks,
# inherits SLURM_CONF naming this file: that is how cleanup finds them,
# and no other cluster's. The job is cancelled first, then the daemons
# stopped, then whatever is left killed.
ours() {
  local env pid
  for env in /proc/[0-9]*/environ; do
    pid=${env#/proc/}
    pid=${pid%/environ}
    if [ "$pid" = $$ ] || [ "$pid" = "$BASHPID" ]; then continue; fi
    if tr '\0' '\n' 2>/dev/null <"$env" | grep -qxF "SLURM_CONF=$conf"; then echo "$pid"; fi
  done
}
cleanup() {
  set +e
  scancel --full --quiet --user=root 2>/dev/null
  local f pids
  for f in slurmd slurmctld munged; do
    [ -s "$work/$f.pid" ] && kill "$(cat "$work/$f.pid")" 2>/dev/null
  done
  for _ in $(seq 1 50); do
    pids=$(ours)
    [ -n "$pids" ] || break
    sleep 0.1
  done
  # shellcheck disable=SC2086 # a list of pids
  [ -z "$pids" ] || kill -9 $pids 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
# A signal (ctest's timeout) ends the script through its EXIT trap too.
trap 'exit 1' HUP INT TERM
export SLURM_CONF=$conf

# Two free ports on this machine for slurmctld and slurmd.
read -r ctld_port slurmd_port < <(python3 -c 'import socket
socks = [socket.socket() for _ in range(2)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in socks))')
node=$(hostname -s)
mkdir -m 700 "$work/munge"
mkdir "$work/state" "$work/spool"
mungekey --create --keyfile="$work/munge/munge.key"
# The daemons run in the foreground (-D, -F) in the background of this
# shell, so that $! is their pid; munged refuses root without --force.
munged -F --force --key-file="$work/munge/munge.key" --socket="$work/munge/socket" \
  --pid-file="$work/munge/munged.pid" --seed-file="$work/munge/seed" \
  --log-file="$work/munged.log" 2>>"$work/munged.log" &
echo $! >"$work/munged.pid"
# What slurm.conf asks and why:
#   SlurmUser=root, the state in $work: nothing of the machine's own Slurm
#     (/etc/slurm, /var/spool/slurm*) is read or written;
#   proctrack/pgid, task/none, no accounting: no cgroups or database;
#   SlurmdParameters=config_overrides: the node is as declared (its CPU
#     count), never drained for a socket layout that differs;
#   MinJobAge=6: sbatch --wait polls every 2 s while under a third of it
#     (with the default 300 it waits 2, then 8, then 32 s);
#   MaxTime: a job that hangs ends within 5 minutes.
cat >"$conf" <<EOF
ClusterName=memllmtest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$work/munge/socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pidfile
SlurmdPidFile=$work/slurmd.pidfile
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=6
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=memllm Nodes=$node Default=YES MaxTime=5 State=UP
EOF
for _ in $(seq 1 50); do
  [ -S "$work/munge/socket" ] && break
  sleep 0.1
done
[ -S "$work/munge/socket" ] || skip "munged did not start: $(tail -3 "$work/munged.log")"
slurmctld -D -i -f "$conf" 2>>"$work/slurmctld.log" &
echo $! >"$work/slurmctld.pid"
slurmd -D -f "$conf" 2>>"$work/slurmd.log" &
echo $! >"$work/slurmd.pid"
state=
for _ in $(seq 1 100); do
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
  [ "$state" != idle ] || break
  sleep 0.2
done
[ "$state" = idle ] || skip "the node is not idle after 20 s (${state:-no answer}): $(tail -3 "$work/slurmctld.log" "$work/slurmd.log")"
echo "slurm: a one-node cluster on $node, ports $ctld_port and $slurmd_port"

# A memory of the demo's document (Re-DocRED dev 127), and questions on it.
python3 -c 'import json, sys; json.dump(json.load(open(sys.argv[1]))[127:128], open(sys.argv[2], "w"))' \
  "$data/redocred/dev_revised.json" "$work/doc.json"
"$bin" memory import-docred "$work/doc.json" --memory "$work/mem" --memshards 1 >/dev/null 2>&1 ||
  fail "import-docred"
for q in "The date of birth of Raymond Hermantier is " "Raymond Hermantier died on "; do
  python3 -c 'import json, sys; print(json.dumps({"prompt": sys.argv[1], "max_tokens": 24,
    "greedy": True, "stop": ["\n", " ."]}))' "$q"
done >"$work/questions.jsonl"
args=(generate --model "$model" --adapter "mr=$root/adapters/smollm2-135m-mr" --memory "$work/mem"
  --input "$work/questions.jsonl")
OMP_NUM_THREADS=1 "$bin" "${args[@]}" --output "$work/one.jsonl" 2>"$work/one.err" ||
  fail "generate in one process: $(tail -3 "$work/one.err")"
grep -q '"outcome":"answered"' "$work/one.jsonl" ||
  fail "no read answered from the memory in one process: $(cat "$work/one.jsonl")"

# The job, as the README submits it. Ranks yield the CPU while they wait:
# 4 ranks share this node's CPUs, and srun does not tell Open MPI so. The
# binary is a wrapper that notes each task's place (Slurm's and PMIx's)
# before it runs memllm.
cat >"$work/memllm" <<EOF
#!/bin/sh
echo "\$SLURM_PROCID \$SLURM_NTASKS \${PMIX_RANK:-none}" >>"$work/tasks"
exec "$bin" "\$@"
EOF
chmod +x "$work/memllm"
start=$SECONDS
rc=0
MEMLLM_BIN=$work/memllm OMPI_MCA_mpi_yield_when_idle=1 timeout 240 \
  sbatch --wait --nodes=1 --chdir="$work" --output="$work/job.out" --error="$work/job.err" \
  "$root/deploy/slurm.sbatch" 2 1 "${args[@]}" --output "$work/slurm.jsonl" \
  >"$work/sbatch.out" 2>&1 || rc=$?
echo "slurm: $(head -1 "$work/sbatch.out"), done in $((SECONDS - start)) s (exit $rc)"
[ "$rc" -eq 0 ] || fail "sbatch --wait exited $rc: $(tail -5 "$work/sbatch.out" "$work/job.err" 2>&1)"
# The layout the script printed: every role on this one node, the
# coordinator, then 2 stages, then 1 shard.
printf '%s slots=%s\n' "$node" 1 "$node" 2 "$node" 1 >"$work/layout.want"
cmp -s "$work/layout.want" "$work/job.out" ||
  fail "the job's layout: $(cat "$work/job.out"), not $(cat "$work/layout.want")"
# srun started the 4 ranks, wired by PMIx (each one's PMIx rank is its
# task id), whose MPI world runs the stages and the shard.
sort -n "$work/tasks" >"$work/tasks.sorted"
printf '%s 4 %s\n' 0 0 1 1 2 2 3 3 >"$work/tasks.want"
cmp -s "$work/tasks.want" "$work/tasks.sorted" ||
  fail "the job's tasks (task, of, PMIx rank): $(cat "$work/tasks.sorted")"
# Each read's latency aside (tests/hosts/without_latency.py: present, > 0).
for run in one slurm; do
  python3 "$root/tests/hosts/without_latency.py" "$work/$run.jsonl" 1 >"$work/$run.trace" ||
    fail "$run: a read without its latency"
done
cmp -s "$work/one.trace" "$work/slurm.trace" ||
  fail "the job's results differ from one process: $(diff "$work/one.trace" "$work/slurm.trace")"
echo "slurm: ok ($(wc -l <"$work/slurm.jsonl") results, as in one process)"
