#!/usr/bin/env python3
"""memllm serve whose memory's disk fills up (a 3 MB tmpfs): a write that
meets the full disk answers 507 with a JSON error naming the shard's
directory, and so does every later write; reads still answer (a fact
acknowledged before is found); SIGTERM still drains to exit 0; and once
the disk has room again the memory verifies clean with every acknowledged
batch of facts in it. With MEMLLM_TEST_SIZE=small (the sanitizer build,
where each batch's embeddings cost ten times as much: 3 MB took 114 s
there) the tmpfs is 1 MB: fewer batches fit, the same checks.

    test_serve_full_disk.py
Needs root (mount); exits 77 where it cannot mount a tmpfs.
Environment (set by ctest): as tests/serve/test_serve.py.
"""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_serve import BIN, SMALL, Server, call, check, failures  # noqa: E402

DISK = "1m" if SMALL else "3m"


def facts(batch):
    """40 facts of about 1 KB each (objects may have 1024 bytes), named after
    the batch."""
    return [{"subject": f"Entity {batch}-{i}", "relation": "described as",
             "object": f"Description {batch}-{i} " + "x" * 900} for i in range(40)]


def main():
    with tempfile.TemporaryDirectory(prefix="memllm-serve-disk-") as tmp:
        disk = os.path.join(tmp, "disk")
        os.mkdir(disk)
        m = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", disk],
                           capture_output=True, text=True)
        if m.returncode != 0:
            print(f"test_serve_full_disk: SKIP: cannot mount a tmpfs (needs root): {m.stderr}")
            sys.exit(77)
        try:
            run(disk)
        finally:
            subprocess.run(["umount", disk])
    if failures:
        sys.exit(f"test_serve_full_disk.py: {len(failures)} check(s) failed")
    print("test_serve_full_disk.py: all checks passed")


def run(disk):
    mem = os.path.join(disk, "memory")
    s = Server("--memory", mem)
    acknowledged, refused = [], None
    try:
        for batch in range(400):
            st, _, body = call(s.url + "/v1/memory/facts", {"facts": facts(batch)}, method="POST")
            if st != 200:
                refused = (st, body)
                break
            acknowledged.append(batch)
        check(refused is not None, f"400 batches of 40 KB fitted on a {DISK} disk")
        check(acknowledged, "not one batch fitted before the disk was full")
        if refused:
            st, body = refused
            err = body.get("error", {}) if isinstance(body, dict) else {}
            check(st == 507 and err.get("type") == "insufficient_storage_error"
                  and mem in err.get("message", ""),
                  f"the write on a full disk got {st} {body}")
            st, _, body = call(s.url + "/v1/memory/facts", {"facts": facts(999)}, method="POST")
            check(st == 507, f"a later write got {st} {body}")
        if acknowledged:
            last = acknowledged[-1]
            st, _, body = call(s.url + "/v1/memory/query",
                               {"queries": [f"Entity {last}-0>>described as>>"]}, method="POST")
            answers = body["results"][0]["answers"] if st == 200 else []
            check(answers and answers[0]["text"].startswith(f"Description {last}-0 "),
                  f"a read of an acknowledged fact on the full disk: {st} {body}")
    finally:
        rc, log = s.stop()
    check(rc == 0, f"memllm serve exited {rc} on SIGTERM with its disk full: {log[-2000:]}")
    subprocess.run(["mount", "-o", "remount,size=64m", disk], check=True)
    v = subprocess.run([BIN, "memory", "verify", "--memory", mem], capture_output=True, text=True)
    check(v.returncode == 0, f"memory verify after the disk had room: {v.stdout}{v.stderr}")
    for batch in acknowledged[:: max(1, len(acknowledged) // 5)] + acknowledged[-1:]:
        q = subprocess.run([BIN, "memory", "query", "--memory", mem,
                            f"Entity {batch}-39>>described as>>"], capture_output=True, text=True)
        check(q.returncode == 0 and f"Description {batch}-39 " in q.stdout,
              f"acknowledged batch {batch} is not in the memory: {q.stdout}{q.stderr}")


if __name__ == "__main__":
    main()
