#!/usr/bin/env python3
"""memllm generate's JSONL results (FILE) without each read's latency, on
stdout: the one field of a read trace that differs between runs and layouts,
so that the rest can be compared byte for byte (one JSON object a line,
keys in their order).

    without_latency.py FILE SHARDS [LABEL]

Every read that ran a query must carry its latency, over all and at each of
the memory's SHARDS shards, > 0 ms; one that does not fails (exit 1). With
LABEL, the reads' latencies go to stderr as "LABEL: N reads, latency p50 X
ms, max Y ms, at each shard p50 Z ms"."""
import json
import statistics
import sys


def main():
    path, shards = sys.argv[1], int(sys.argv[2])
    label = sys.argv[3] if len(sys.argv) > 3 else None
    total, per_shard, bad = [], [], []
    out = []
    with open(path) as f:
        for line in f:
            res = json.loads(line)
            for rd in res.get("reads", []):
                lat = rd.pop("latency", None)
                if not any("answers" in q for q in rd.get("queries", [])):
                    continue
                if (not lat or not lat.get("ms", 0) > 0 or len(lat.get("shard_ms", [])) != shards
                        or not all(ms > 0 for ms in lat["shard_ms"])):
                    bad.append(f"{rd.get('call')!r}: latency {lat}")
                    continue
                total.append(lat["ms"])
                per_shard.extend(lat["shard_ms"])
            out.append(json.dumps(res, ensure_ascii=False, separators=(",", ":")))
    if bad:
        print(f"{path}: reads without their latency at {shards} shards: " + "; ".join(bad),
              file=sys.stderr)
        sys.exit(1)
    if label and total:
        print(f"{label}: {len(total)} reads, latency p50 {statistics.median(total):.3f} ms, "
              f"max {max(total):.3f} ms, at each shard p50 {statistics.median(per_shard):.3f} ms",
              file=sys.stderr)
    print("\n".join(out))


main()
