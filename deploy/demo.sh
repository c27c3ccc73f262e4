#!/usr/bin/env bash
# MemLLM end to end on the embedded default, in one process: the MW adapter
# annotates a short text into a fresh memory, then the MR adapter answers a
# question reading that memory, and the answer and its read trace are
# printed. The text (deploy/demo/raymond-hermantier.txt) is Re-DocRED dev
# document 127 (data/redocred, MIT), one of the 50 documents the adapters
# were not trained on.
#
#   deploy/demo.sh [QUESTION]     (default: "The date of birth of Raymond Hermantier is ")
#
# MEMLLM_BIN, MEMLLM_MODEL and MEMLLM_THREADS override the binary, the model
# and the threads. The question ends in a space: the MR adapter learnt to
# read where the text before a mention ends with one.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${MEMLLM_BIN:-build/coordinator/memllm}
model=${MEMLLM_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
threads=${MEMLLM_THREADS:-$(nproc)}
question=${1:-"The date of birth of Raymond Hermantier is "}
text=deploy/demo/raymond-hermantier.txt
work=$(mktemp -d "${TMPDIR:-/tmp}/memllm-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT

echo "== the text ($text)"
cat "$text"
echo
echo "== 1. the MW adapter annotates it into a fresh memory ($work/memory)"
"$bin" annotate "$text" --model "$model" --adapter mw=adapters/smollm2-135m-mw \
  --memory "$work/memory" --threads "$threads"
echo "-- the facts it wrote (memllm memory dump):"
"$bin" memory dump --memory "$work/memory"
echo
echo "== 2. the MR adapter answers, reading that memory"
echo "-- question: \"$question\""
python3 -c 'import json, sys; print(json.dumps({"prompt": sys.argv[1], "max_tokens": 40,
  "greedy": True, "stop": ["\n", " ."]}))' "$question" >"$work/question.jsonl"
"$bin" generate --model "$model" --adapter mr=adapters/smollm2-135m-mr --memory "$work/memory" \
  --input "$work/question.jsonl" --output "$work/answer.jsonl" --threads "$threads"
python3 - "$work/answer.jsonl" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).readline())
print("-- generated, with its memory calls:", r["text"])
print("-- answer (API spans removed):", r["text_without_api"].strip())
for read in r["reads"]:
    print("-- read trace:", json.dumps(read, ensure_ascii=False))
PY
