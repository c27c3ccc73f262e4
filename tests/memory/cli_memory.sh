#!/usr/bin/env bash
# memllm memory end to end: import all of Re-DocRED dev, check the count of
# distinct facts against an independent reading of the JSON (Python, below),
# the same answers and facts with 1 shard, 3 shards in one process and 3
# shard ranks under mpirun, edits, verify, backup/restore, and refusals.
set -euo pipefail
bin=${MEMLLM_BIN:?run under ctest}
data=${MEMLLM_DATA:?run under ctest}
docs="$data/redocred/dev_revised.json"
props="$data/wikidata_props_en.json"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Under sanitizers, LeakSanitizer reports Open MPI's own start-up allocations
# (no usable stack); the single-process runs below are leak-checked.
mpirun=(env "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    mpirun --oversubscribe --allow-run-as-root)
fail() {
    echo "cli_memory: $*" >&2
    exit 1
}

# The distinct facts the import rules give: an entity is named by its first
# mention (whitespace runs made one space), a relation by its Wikidata
# label, and two texts are the same when equal after trimming, collapsing
# whitespace and lowercasing ASCII letters.
expected=$(python3 - "$docs" "$props" <<'PY'
import json, re, sys
docs = json.load(open(sys.argv[1]))
props = json.load(open(sys.argv[2]))
def clean(s):
    return re.sub(r"[ \t\r\n]+", " ", s).strip(" ")
def norm(s):
    return "".join(c.lower() if "A" <= c <= "Z" else c for c in clean(s))
facts = set()
for d in docs:
    names = []
    for mentions in d["vertexSet"]:
        first = min(mentions, key=lambda m: (m["sent_id"], m["pos"][0]))
        names.append(clean(first["name"]))
    for l in d["labels"]:
        facts.add((norm(names[l["h"]]), norm(props.get(l["r"], l["r"])), norm(names[l["t"]])))
print(len(facts))
PY
)

# The answers below are the fallback embedder's; the memories record it, so
# only the commands that create them name it.
"$bin" memory import-docred "$docs" --props "$props" --memory "$work/m3" --memshards 3 \
    --embedder fallback >"$work/import3.txt" 2>"$work/import3.err"
grep -qx 'documents: 500' "$work/import3.txt" || fail "import: $(cat "$work/import3.txt")"
grep -qx 'skipped: 0' "$work/import3.txt" || fail "import skipped items"
"$bin" memory stats --memory "$work/m3" >"$work/stats3.txt"
grep -qx "triples: $expected" "$work/stats3.txt" ||
    fail "stats: expected triples: $expected, got $(grep triples "$work/stats3.txt")"
grep -qx "reverse_copies: $expected" "$work/stats3.txt" || fail "reverse copies"
grep -qx 'shards: 3' "$work/stats3.txt" || fail "shards"
"$bin" memory verify --memory "$work/m3" >"$work/verify.txt" || fail "verify: $(cat "$work/verify.txt")"

# Without --props, from another directory and without MEMLLM_DATA: the
# property labels built into the binary, which must match the file's (the
# dumps of m1 and m3 are compared below).
mkdir "$work/elsewhere"
(cd "$work/elsewhere" && env -u MEMLLM_DATA "$bin" memory import-docred "$docs" \
    --memory "$work/m1" --embedder fallback >"$work/import1.txt" 2>"$work/import1.err") ||
    fail "import without --props from another directory: $(cat "$work/import1.err")"
grep -qx 'documents: 500' "$work/import1.txt" || fail "import without --props: $(cat "$work/import1.txt")"
grep -qx 'skipped: 0' "$work/import1.txt" || fail "import without --props skipped items"
# A new memory made from another directory without MEMLLM_MODELS_DIR takes
# MiniLM from the models folder the binary was built for, not the fallback
# (a path relative to the current directory would miss it).
if [ -f "${MEMLLM_MODELS_DIR:?run under ctest}/all-MiniLM-L6-v2/config.json" ]; then
    (cd "$work/elsewhere" && env -u MEMLLM_MODELS_DIR "$bin" memory write "Paris>>capital of>>France" \
        --memory "$work/minilm" >/dev/null 2>"$work/minilm.err") ||
        fail "write from another directory: $(cat "$work/minilm.err")"
    "$bin" memory stats --memory "$work/minilm" | grep -q '^embedder: all-MiniLM-L6-v2/' ||
        fail "a new memory made elsewhere did not take MiniLM: $(cat "$work/minilm.err")"
else
    echo "cli_memory: no MiniLM in $MEMLLM_MODELS_DIR: default models folder not checked"
fi
queries=("Willi Schneider>>date of birth>>" ">>country of citizenship>>Germany"
    ">>author>>Glenda Adams" "Wilfried Schneider>>country of citizenship>>"
    ">>located in the administrative territorial entity>>California" "Mediaș>>country>>"
    "Germany>>capital>>")
"$bin" memory query "${queries[@]}" --memory "$work/m1" >"$work/q1.txt"
"$bin" memory query "${queries[@]}" --memory "$work/m3" >"$work/q3.txt"
"${mpirun[@]}" -np 4 "$bin" memory query "${queries[@]}" --memory "$work/m3" --memshards 3 \
    >"$work/q3mpi.txt"
[ "$(grep -c $'^  ' "$work/q1.txt")" -gt 10 ] || fail "queries found few answers: $(cat "$work/q1.txt")"
cmp -s "$work/q1.txt" "$work/q3.txt" || fail "answers differ for 1 and 3 shards"
cmp -s "$work/q3.txt" "$work/q3mpi.txt" || fail "answers differ in one process and under mpirun"
"$bin" memory dump --memory "$work/m1" | sort >"$work/d1.txt"
"${mpirun[@]}" -np 4 "$bin" memory dump --memory "$work/m3" | sort >"$work/d3.txt"
[ "$(wc -l <"$work/d1.txt")" -eq "$expected" ] || fail "dump has $(wc -l <"$work/d1.txt") facts"
cmp -s "$work/d1.txt" "$work/d3.txt" || fail "dumps differ for 1 shard and 3 shard ranks"
# A memory with no fact dumps nothing and exits 0 (its shards' scans return
# no cursor: UBSan once stopped here).
echo '[]' >"$work/none.json"
"$bin" memory import-docred "$work/none.json" --memory "$work/empty" --memshards 2 >/dev/null
"$bin" memory dump --memory "$work/empty" >"$work/d0.txt" || fail "dump of an empty memory failed"
[ ! -s "$work/d0.txt" ] || fail "an empty memory dumps: $(cat "$work/d0.txt")"

# Edits, through the MPI shard ranks.
"${mpirun[@]}" -np 4 "$bin" memory write "Glenda Adams>>employer>>Test University" \
    --source "cli test" --memory "$work/m3" >/dev/null
"$bin" memory query "Glenda Adams>>employer>>" --memory "$work/m3" | grep -q $'^  Test University\t1.0000\texact\t.*cli test' ||
    fail "written fact not found"
"$bin" memory replace "Glenda Adams>>employer>>Other University" --memory "$work/m3" >"$work/r.txt"
grep -qx 'replaced: 1' "$work/r.txt" || fail "replace: $(cat "$work/r.txt")"
"$bin" memory query "Glenda Adams>>employer>>" ">>employer>>Test University" --memory "$work/m3" >"$work/q.txt"
grep -q $'^  Other University\t' "$work/q.txt" || fail "replace did not store the new fact"
grep -q 'Test University' <(sed 1d "$work/q.txt" | grep -v '^>>') && fail "replace kept the old fact"
"$bin" memory delete "Glenda Adams>>employer>>Other University" --memory "$work/m3" >"$work/del.txt"
grep -qx 'deleted: 1' "$work/del.txt" || fail "delete: $(cat "$work/del.txt")"
"$bin" memory verify --memory "$work/m3" >/dev/null || fail "verify after edits"

# Backup, change, restore: the same facts as at the backup.
"$bin" memory dump --memory "$work/m3" | sort >"$work/before.txt"
"$bin" memory backup "$work/backup" --memory "$work/m3" >/dev/null
"$bin" memory write "Backup Test>>instance of>>thing" --memory "$work/m3" >/dev/null
"$bin" memory delete "$(head -n 1 "$work/before.txt" | cut -f1)" --memory "$work/m3" >/dev/null
"$bin" memory dump --memory "$work/m3" | sort | cmp -s - "$work/before.txt" && fail "edits not visible"
"$bin" memory restore "$work/backup" --memory "$work/m3" >/dev/null
"$bin" memory dump --memory "$work/m3" | sort | cmp -s - "$work/before.txt" || fail "restore differs"

# Refusals: a clear message naming the input, a non-zero exit, nothing written.
set +e
"$bin" memory write "only>>two" --memory "$work/m3" 2>"$work/e1.txt"
rc1=$?
"$bin" memory write "a>>b>>$(printf 'x%.0s' $(seq 1 1100))" --memory "$work/m3" 2>"$work/e2.txt"
rc2=$?
"$bin" memory write "ok>>fine>>$(printf 'bad\xff')" --memory "$work/m3" 2>"$work/e3.txt"
rc3=$?
"$bin" memory query "x>>y>>" --memory "$work/none" 2>"$work/e4.txt"
rc4=$?
set -e
[ $rc1 -ne 0 ] && grep -q "only>>two" "$work/e1.txt" || fail "malformed triple: $(cat "$work/e1.txt")"
[ $rc2 -ne 0 ] && grep -q "1100 bytes" "$work/e2.txt" || fail "long text: $(cat "$work/e2.txt")"
[ $rc3 -ne 0 ] && grep -q "invalid UTF-8" "$work/e3.txt" || fail "bad UTF-8: $(cat "$work/e3.txt")"
[ $rc4 -ne 0 ] && grep -q "no memory at" "$work/e4.txt" || fail "missing memory: $(cat "$work/e4.txt")"
[ ! -e "$work/none" ] || fail "a read created the memory"
"$bin" memory dump --memory "$work/m3" | sort | cmp -s - "$work/before.txt" || fail "a refused write changed the memory"
echo "cli_memory: all checks passed ($expected facts)"
