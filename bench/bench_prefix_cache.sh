#!/usr/bin/env bash
# Prefix sharing in corpus annotation: the first N Re-DocRED dev documents
# through `memllm annotate` with the committed MW adapter, with prefix
# sharing (the default) and without (--no-prefix-cache), at P = 1 (one
# process) and P = 2 (mpirun: coordinator and 2 stage ranks), in one run.
# Prints per run: sentences/s, prompt tokens computed per sentence, the
# fraction of prompt tokens served from the cache, and (P = 1) the KV
# memory's peak against an unpaged cache; then the sharing/no-sharing
# ratios, and whether the memories are identical (they must be). Two more
# runs at P = 1 turn the write loop's repeat rule off (--repeats 0), with
# and without sharing: what the rule saves, and sharing and the rule
# together against neither (their memories differ from the rule's: the
# rule ends looping writes, so it changes what is written).
#
#   bench/bench_prefix_cache.sh [N=50] [MAX_TOKENS=256] [BATCH=16] [THREADS=all cores]
# Uses build/coordinator/memllm (MEMLLM_BIN), SmolLM2 from models/
# (MEMLLM_MODEL), adapters/smollm2-135m-mw (ADAPTER) and data/ (MEMLLM_DATA).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${MEMLLM_BIN:-$here/build/coordinator/memllm}
data=${MEMLLM_DATA:-$here/data}
model=${MEMLLM_MODEL:-$here/models/SmolLM2-135M-Instruct.Q4_1.gguf}
adapter=${ADAPTER:-$here/adapters/smollm2-135m-mw}
n=${1:-50} max_tokens=${2:-256} batch=${3:-16} threads=${4:-$(nproc)}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}
mpi_root=()
[ "$(id -u)" -ne 0 ] || mpi_root=(--allow-run-as-root)

python3 - "$data" "$n" >"$work/docs.jsonl" <<'PY'
import json, sys
data, n = sys.argv[1], int(sys.argv[2])
for d in json.load(open(f"{data}/redocred/dev_revised.json"))[:n]:
    print(json.dumps({"title": d["title"], "sents": d["sents"]}))
PY
echo "annotate: $n documents, $(basename "$model") + $(basename "$adapter"), max tokens" \
  "$max_tokens, batch $batch, $threads threads"

# run NAME P [OPTION...]: one annotate job; its summary in $work/NAME.out.
run() {
  local name=$1 p=$2
  shift 2
  local args=(annotate "$work/docs.jsonl" --model "$model" --adapter "mw=$adapter"
    --memory "$work/$name.mem" --max-tokens "$max_tokens" --batch "$batch" --embedder fallback
    "$@")
  if [ "$p" -eq 1 ]; then
    OMP_NUM_THREADS=$threads "$bin" "${args[@]}" --threads "$threads" >"$work/$name.out"
  else
    # each stage rank gets its share of the cores; the coordinator waits
    OMP_NUM_THREADS=$(((threads + 1) / 2)) mpirun --oversubscribe "${mpi_root[@]}" \
      --mca mpi_yield_when_idle 1 -np 3 "$bin" "${args[@]}" --stages 2 >"$work/$name.out"
  fi
  "$bin" memory dump --memory "$work/$name.mem" >"$work/$name.dump"
}

field() { awk -F': ' -v k="$2" '$1 == k { print $2 }' "$work/$1.out"; }

# row NAME LABEL: the figures of one run.
row() {
  local name=$1
  awk -v run="$2" -v rate="$(field "$name" sentences_per_s)" -v s="$(field "$name" sentences)" \
    -v t="$(field "$name" prompt_tokens)" -v r="$(field "$name" prompt_tokens_reused)" \
    -v gen="$(field "$name" tokens)" -v peak="$(field "$name" kv_mib_peak)" \
    -v flat="$(field "$name" kv_mib_unpaged)" 'BEGIN {
      printf "%-26s %12s %14.1f %9.1f%% %12.1f %12s %12s\n", run, rate, (t - r) / s,
        100 * r / t, gen / s, peak == "" ? "-" : peak, flat == "" ? "-" : flat }'
}

# ratio LABEL A B: sentences/s of run A over run B.
ratio() {
  awk -v what="$1" -v a="$(field "$2" sentences_per_s)" -v b="$(field "$3" sentences_per_s)" \
    'BEGIN { printf "%s: %.2fx\n", what, a / b }'
}

printf '%-26s %12s %14s %10s %12s %12s %12s\n' run sentences/s prompt_tok/sent from_cache \
  gen_tok/sent kv_peak_MiB unpaged_MiB
for p in 1 2; do
  run "p$p-shared" "$p"
  row "p$p-shared" "P=$p shared"
  run "p$p-unshared" "$p" --no-prefix-cache
  row "p$p-unshared" "P=$p unshared"
  ratio "P=$p sentences/s with sharing / without" "p$p-shared" "p$p-unshared"
done
run p1-shared-norule 1 --repeats 0
row p1-shared-norule "P=1 shared, --repeats 0"
run p1-unshared-norule 1 --no-prefix-cache --repeats 0
row p1-unshared-norule "P=1 unshared, --repeats 0"
ratio "P=1 with sharing / without, --repeats 0" p1-shared-norule p1-unshared-norule
ratio "P=1 the repeat rule / --repeats 0, both sharing" p1-shared p1-shared-norule
ratio "P=1 sharing and the repeat rule / neither" p1-shared p1-unshared-norule
same=yes
for name in p1-unshared p2-shared p2-unshared; do
  cmp -s "$work/p1-shared.dump" "$work/$name.dump" || same="no ($name differs)"
done
cmp -s "$work/p1-shared-norule.dump" "$work/p1-unshared-norule.dump" ||
  same="no (p1-unshared-norule differs from p1-shared-norule)"
echo "memories identical with and without sharing (P = 1 and 2; and with --repeats 0): $same"
[ "$same" = yes ]
