#!/usr/bin/env bash
# Corpus annotation throughput: the first N Re-DocRED dev documents through
# `memllm annotate` (MemLLM write loop, late stopping, memory writes with
# provenance), one process, P=1 stage, into a fresh memory; prints memllm's
# summary (documents, sentences, tokens, triples, sentences/s, triples/s).
#
#   bench/bench_annotate.sh [N=20] [EMBEDDER=default|fallback|MODEL_DIR] [MAX_TOKENS=256]
#                           [BATCH=16] [THREADS=all cores]
# Uses build/coordinator/memllm (MEMLLM_BIN to override), SmolLM2 from
# models/ (MEMLLM_MODEL; add e.g. ADAPTER=DIR for a trained write adapter)
# and data/ (MEMLLM_DATA). EMBEDDER=default: the memory's
# default embedder (all-MiniLM-L6-v2 from models/ when present).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${MEMLLM_BIN:-$here/build/coordinator/memllm}
data=${MEMLLM_DATA:-$here/data}
model=${MEMLLM_MODEL:-$here/models/SmolLM2-135M-Instruct.Q4_1.gguf}
n=${1:-20} embedder=${2:-default} max_tokens=${3:-256} batch=${4:-16} threads=${5:-}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}

python3 - "$data" "$n" >"$work/docs.jsonl" <<'PY'
import json, sys
data, n = sys.argv[1], int(sys.argv[2])
for d in json.load(open(f"{data}/redocred/dev_revised.json"))[:n]:
    print(json.dumps({"title": d["title"], "sents": d["sents"]}))
PY
args=(--model "$model" --memory "$work/mem" --max-tokens "$max_tokens" --batch "$batch"
  --trace "$work/trace.jsonl")
[ "$embedder" = default ] || args+=(--embedder "$embedder")
[ -z "$threads" ] || args+=(--threads "$threads")
[ -z "${ADAPTER:-}" ] || args+=(--adapter "mw=$ADAPTER" --use-adapter mw)
echo "annotate: $n documents, model $(basename "$model"), embedder $embedder," \
  "max tokens $max_tokens, batch $batch, threads ${threads:-all}"
"$bin" annotate "$work/docs.jsonl" "${args[@]}"
python3 - "$work/trace.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cut = sum(r["cuts"] > 0 for r in rows)
print(f"late stopping: {cut} of {len(rows)} sentences had a cut point; "
      f"mean tokens per sentence {sum(r['tokens'] for r in rows) / max(len(rows), 1):.1f}")
PY
