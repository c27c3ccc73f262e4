#!/usr/bin/env bash
# Runs every libFuzzer target found in a fuzz build for a short budget each,
# on a scratch copy of its seed corpus (tests/fuzz/corpus/<name>/), and fails
# if any target crashes, leaks, hangs or runs out of memory.
#
#   tests/run-fuzz.sh BUILD_DIR [SECONDS_PER_TARGET [JOBS]]
#
# SECONDS_PER_TARGET: default 30. JOBS targets run side by side (default
# nproc): each libFuzzer process runs on one core, so one at a time would
# leave the other cores of a CI machine idle; each target still gets its
# whole budget on a core of its own. The results print in target order.
#
# It builds nothing; make the build first, e.g.
#   CC=clang cmake -S . -B build-fuzz -DMEMLLM_FUZZ=ON && cmake --build build-fuzz
# A crashing input is kept in BUILD_DIR/fuzz-crashes/.
set -euo pipefail

build=${1:?usage: $0 BUILD_DIR [SECONDS_PER_TARGET [JOBS]]}
secs=${2:-30}
jobs=${3:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)

mapfile -t targets < <(find "$build" -type f -name 'fuzz_*' ! -name '*.*' -perm -u+x | sort)
if [ ${#targets[@]} -eq 0 ]; then
    echo "run-fuzz: no fuzz_* executables under $build" >&2
    exit 1
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
crashes="$build/fuzz-crashes"
mkdir -p "$crashes"

# One target: its verdict (and on failure its log's last lines) into
# $work/<name>.result, exit status 0 or 1.
fuzz_one() {
    local bin=$1 target name corpus log
    target=$(basename "$bin")
    name=${target#fuzz_}
    corpus="$work/$name"
    mkdir -p "$corpus"
    if [ -d "$here/fuzz/corpus/$name" ]; then
        cp -r "$here/fuzz/corpus/$name/." "$corpus/"
    fi
    log="$work/$name.log"
    # -timeout: one input taking seconds is a bug (inputs are small).
    if "$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$crashes/$target-" "$corpus" >"$log" 2>&1; then
        runs=$(grep -o 'Done [0-9]* runs in [0-9]* second(s)' "$log" | tail -n 1 || true)
        echo "$target: ok (${runs:-no summary}; corpus $(ls "$corpus" | wc -l) inputs)" >"$work/$name.result"
    else
        { echo "$target: FAILED; last lines of its log:"; tail -n 40 "$log"; } >"$work/$name.result"
        return 1
    fi
}

running=0
for bin in "${targets[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n || true
        running=$((running - 1))
    fi
    fuzz_one "$bin" &
    running=$((running + 1))
done
wait || true

failed=0
for bin in "${targets[@]}"; do
    name=$(basename "$bin")
    name=${name#fuzz_}
    if [ -f "$work/$name.result" ]; then
        cat "$work/$name.result"
    else
        echo "fuzz_$name: FAILED; no result (the runner died)"
    fi
    grep -q '^fuzz_[a-z_]*: ok ' "$work/$name.result" 2>/dev/null || failed=1
done
exit $failed
