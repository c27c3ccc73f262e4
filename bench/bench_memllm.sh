#!/usr/bin/env bash
# The cost of MemLLM memory reads inside generation: fills a memory from
# Re-DocRED dev (all gold triples), then generates from N prompts that each
# end in a read call for a stored fact, and prints memllm's summary line
# (reads, ms per read in the memory, share of the run) and tokens/s.
#
#   bench/bench_memllm.sh [N=50] [EMBEDDER=fallback|MODEL_DIR] [MAX_TOKENS=32]
# Uses build/coordinator/memllm (MEMLLM_BIN to override), SmolLM2 from
# models/ and data/ (MEMLLM_DATA to override).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${MEMLLM_BIN:-$here/build/coordinator/memllm}
data=${MEMLLM_DATA:-$here/data}
model=${MEMLLM_MODEL:-$here/models/SmolLM2-135M-Instruct.Q4_1.gguf}
n=${1:-50} embedder=${2:-fallback} max_tokens=${3:-32}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export GOMP_SPINCOUNT=${GOMP_SPINCOUNT:-10000}

"$bin" memory import-docred "$data/redocred/dev_revised.json" --memory "$work/mem" \
  --embedder "$embedder" >/dev/null 2>&1
python3 - "$data" "$n" "$max_tokens" >"$work/prompts.jsonl" <<'PY'
import json, sys
data, n, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
props = json.load(open(f"{data}/wikidata_props_en.json"))
docs = json.load(open(f"{data}/redocred/dev_revised.json"))
out = 0
for d in docs:
    for lab in d.get("labels", []):
        if out == n:
            break
        s = d["vertexSet"][lab["h"]][0]["name"]
        r = props.get(lab["r"], lab["r"])
        prompt = f"{s} ({{MEM_READ({s}>>{r}>>)-->"
        print(json.dumps({"prompt": prompt, "max_tokens": max_tokens, "greedy": True}))
        out += 1
PY
"$bin" generate --model "$model" --memory "$work/mem" --input "$work/prompts.jsonl" \
  --batch 8 >"$work/out.jsonl"
python3 - "$work/out.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
reads = [r for row in rows for r in row.get("reads", [])]
answered = sum(r["outcome"] == "answered" for r in reads)
print(f"prompts: {len(rows)}, reads: {len(reads)}, answered: {answered}")
PY
