#!/usr/bin/env python3
"""memllm serve's memory API, annotate jobs, key roles, /health and /metrics
under mpirun with 1 + 1 + 2 ranks (the coordinator, one pipeline stage, two
memory shard ranks), against the one-process server with two in-process
shards given the same requests:

  - the same sequence of memory calls (write a held-out Re-DocRED
    document's facts, query, entity lookup with its facts, stats, an edit
    batch and its undo, replace, delete, bad bodies) answers the same (but
    for times and batch ids), and so do 401 (no key, a wrong key) and 403 (a
    read-only key on every write route, annotate included);
  - an annotate job (the MW adapter, one sentence) ends done with the same
    progress and token usage, and leaves the same memory (`memory dump`);
  - /metrics: the token counters are the generations' usage plus the annotate
    job's, each shard's reads and writes (memllm_shard_requests_total) are
    the same on both layouts and each shard got some of both;
  - /health lists the stage and both shards "ok" (the stage rank's figures
    under mpirun); with a shard rank stopped (SIGSTOP) it answers 503 within
    --health-timeout naming that shard "no answer" and the other "ok", with
    the stage rank stopped the stage "no answer"; once continued (SIGCONT)
    200 again;
  - a stats call and a health probe add one read to each shard and no write;
    the KV cache holds tokens while a generation runs, none after;
  - SIGTERM to the coordinator: every rank stops, mpirun exits 0.

    test_serve_mpi_memory.py
Environment: as test_serve_mpi.py (skipped, exit 77, without mpirun).
"""
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_serve import Server, call, check, failures, run  # noqa: E402
from test_serve_memory_api import MW, dump, metrics  # noqa: E402

HEALTH_TIMEOUT = 3


def rank_pid(mpirun_pid, rank):
    """The pid of an MPI rank among mpirun's children."""
    for pid in subprocess.run(["pgrep", "-P", str(mpirun_pid)], capture_output=True,
                              text=True).stdout.split():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if f"OMPI_COMM_WORLD_RANK={rank}\0".encode() in f.read():
                    return int(pid)
        except OSError:
            continue
    return None


def normalise(v):
    """An answer without what differs between two runs by design: times and
    ids (edit batch ids hold the time)."""
    if isinstance(v, dict):
        return {k: ("ID" if k == "id" else normalise(x)) for k, x in v.items()
                if k not in ("time_ms", "created")}
    if isinstance(v, list):
        return [normalise(x) for x in v]
    if isinstance(v, str):
        return re.sub(r"\d{8}-\d{6}-\d+", "ID", v)
    return v


def session(s, facts, doc):
    """The same calls on either layout; returns [(what, status, answer)],
    the annotate job's usage and the generations' token counts."""
    out = []
    rw, ro = {"Authorization": "Bearer sk-rw"}, {"Authorization": "Bearer sk-ro"}

    def do(what, path, body=None, method=None, headers=rw):
        st, _, b = call(s.url + path, body, method=method, headers=headers)
        out.append((what, st, normalise(b)))
        return st, b

    st, b = do("write", "/v1/memory/facts", {"facts": [{"triple": t, "source": "doc33",
                                                        "sentence": 3} for t in facts]},
               method="POST")
    check(st == 200 and b["facts_added"] == len(facts), f"write: {st} {b}")
    queries = [t.rsplit(">>", 1)[0] + ">>" for t in facts[:4]]
    queries += [">>" + t.split(">>", 1)[1] for t in facts[4:6]]
    st, b = do("query", "/v1/memory/query", {"queries": queries}, method="POST", headers=ro)
    check(st == 200 and all(r["answers"] for r in b.get("results", [])), f"query: {st} {b}")
    subject = facts[0].split(">>")[0]
    st, b = do("entity", "/v1/memory/entities/" + subject.replace(" ", "%20"), headers=ro)
    check(st == 200 and b["entities"][0]["facts"], f"entity: {st} {b}")
    do("no entity", "/v1/memory/entities/Nowhere%20Land", headers=ro)
    st, b = do("stats", "/v1/memory/stats", headers=ro)
    check(st == 200 and b["shards"] == 2 and b["triples"] == len(facts), f"stats: {st} {b}")
    st, b = do("edit", "/v1/memory/edits",
               {"edits": [{"op": "delete", "fact": facts[1]},
                          {"op": "add", "fact": f"{subject}>>test relation>>Atlantis"},
                          {"op": "replace", "fact": facts[2].rsplit(">>", 1)[0] + ">>Lemuria"}]},
               method="POST")
    check(st == 200 and b["deleted"] == 1 and b["added"] == 1, f"edit: {st} {b}")
    do("entity after edit", "/v1/memory/entities/" + subject.replace(" ", "%20"))
    do("undo", f"/v1/memory/edits/{b.get('id')}/undo", method="POST")
    do("undo again", f"/v1/memory/edits/{b.get('id')}/undo", method="POST")
    do("query after undo", "/v1/memory/query", {"queries": queries}, method="POST")
    do("replace", "/v1/memory/facts", {"facts": [f"{subject}>>test relation>>Mu"]}, method="PUT")
    do("delete", "/v1/memory/facts", {"facts": [f"{subject}>>test relation>>Mu"]},
       method="DELETE")
    do("bad query", "/v1/memory/query", {"queries": ["no separator"]}, method="POST")
    # Key roles: 401 without or with a wrong key, 403 read-only on writes.
    do("no key", "/v1/memory/stats", headers={})
    do("wrong key", "/v1/memory/stats", headers={"Authorization": "Bearer sk-wrong"})
    for what, path, body, method in (
            ("ro write", "/v1/memory/facts", {"facts": facts[:1]}, "POST"),
            ("ro replace", "/v1/memory/facts", {"facts": facts[:1]}, "PUT"),
            ("ro delete", "/v1/memory/facts", {"facts": facts[:1]}, "DELETE"),
            ("ro edit", "/v1/memory/edits", {"edits": [{"op": "add", "fact": facts[0]}]}, "POST"),
            ("ro undo", "/v1/memory/edits/x/undo", None, "POST"),
            ("ro annotate", "/v1/memory/annotate", {"documents": [doc]}, "POST")):
        st, b = do(what, path, body, method=method, headers=ro)
        check(st == 403 and b["error"]["type"] == "permission_error", f"{what}: {st} {b}")

    # A generation (its tokens), then an annotate job.
    st, b = do("generation", "/v1/completions", {"prompt": "The capital of France is",
                                                  "max_tokens": 8, "temperature": 0},
               method="POST", headers=ro)
    usage = b.get("usage", {})
    st, b = do("annotate", "/v1/memory/annotate", {"documents": [doc], "model": "mw"},
               method="POST")
    check(st == 202, f"annotate: {st} {b}")
    end, p = time.time() + 300, {}
    while time.time() < end:
        st, _, p = call(s.url + f"/v1/memory/annotate/{b.get('id')}", headers=ro)
        if p.get("status") not in ("queued", "running"):
            break
        time.sleep(0.2)
    out.append(("annotate progress", st, normalise(p)))
    check(p.get("status") == "done" and p["sentences_done"] == len(doc["sents"])
          and p["usage"]["completion_tokens"] > 0, f"the annotate job ended {p}")
    return out, p.get("usage", {}), usage


def shard_counts(m):
    return {k: v for k, v in m.items() if k.startswith("memllm_shard_requests_total{")}


def health(s):
    t = time.time()
    st, _, b = call(s.url + "/health")
    return st, b, time.time() - t


def kv_cache(s, name):
    """While a generation runs, the KV cache holds its tokens; after, none."""
    done = {}

    def generate():
        done["r"] = call(s.url + "/v1/completions",
                         {"prompt": "Once upon a time", "max_tokens": 24, "temperature": 0},
                         headers={"Authorization": "Bearer sk-ro"})

    t = threading.Thread(target=generate)
    t.start()
    seen, end = 0.0, time.time() + 60
    while not done and time.time() < end and not seen:
        m = metrics(s)
        seen = m.get("memllm_kv_cache_tokens", 0)
        ratio = m.get("memllm_kv_cache_usage_ratio", 0)
    t.join(timeout=120)
    check(seen > 0 and 0 < ratio <= 1, f"{name}: KV cache use while generating: {seen} {ratio}")
    m = metrics(s)
    check(m.get("memllm_kv_cache_tokens") == 0 and m.get("memllm_kv_cache_usage_ratio") == 0,
          f"{name}: KV cache use after: {m.get('memllm_kv_cache_tokens')}")


def run_layout(tmp, name, facts, doc, launcher=(), ranks=()):
    mem, keys = os.path.join(tmp, name), os.path.join(tmp, "keys")
    args = ["--adapter", f"mw={MW}", "--memory", mem, "--memshards", "2", "--api-keys", keys,
            "--health-timeout", str(HEALTH_TIMEOUT)]
    if launcher:
        args += ["--stages", "1"]
    s = Server(*args, launcher=launcher)
    try:
        st, b, _ = health(s)
        check(st == 200 and b["status"] == "ok" and len(b["stages"]) == 1
              and [x["status"] for x in b["shards"]] == ["ok", "ok"]
              and b["stages"][0]["status"] == "ok" and b["stages"][0]["local"] == (not launcher),
              f"{name}: /health {st} {b}")
        if launcher:
            check("micro_batches" in b["stages"][0], f"no stage figures under mpirun: {b}")
        answers, job, gen = session(s, facts, doc)
        st, b, _ = health(s)
        check(st == 200 and [x.get("triples", 0) > 0 for x in b["shards"]] == [True, True],
              f"{name}: /health after the session {st} {b}")
        m = metrics(s)
        for kind, field in (("prompt", "prompt_tokens"), ("completion", "completion_tokens")):
            got, want = m.get(f"memllm_{kind}_tokens_total"), gen.get(field, 0) + job.get(field, 0)
            check(got == want, f"{name}: {kind} tokens {got}, the generation's and the annotate "
                  f"job's {gen.get(field)} + {job.get(field)}")
        shards = shard_counts(m)
        check(len(shards) == 4 and all(v > 0 for v in shards.values()),
              f"{name}: per-shard requests {shards}")
        # A stats call and a health probe ask every shard once each: two
        # reads a shard, no write.
        call(s.url + "/v1/memory/stats", headers={"Authorization": "Bearer sk-ro"})
        health(s)
        after = shard_counts(metrics(s))
        delta = {k: after.get(k, 0) - v for k, v in shards.items()}
        check(delta == {f'memllm_shard_requests_total{{shard="{j}",kind="{k}"}}':
                        (2 if k == "read" else 0) for j in (0, 1) for k in ("read", "write")},
              f"{name}: a stats call and a probe added {delta}")
        kv_cache(s, name)
        if launcher:
            # A stopped shard rank, then the stage rank: 503 naming it, within
            # the timeout; continued, 200 again.
            for rank, part in ((ranks[3], "shard 1"), (ranks[1], "stage")):
                pid = rank_pid(s.proc.pid, rank)
                check(pid is not None, f"no rank {rank} among mpirun's children")
                if not pid:
                    continue
                os.kill(pid, signal.SIGSTOP)
                try:
                    st, b, sec = health(s)
                finally:
                    os.kill(pid, signal.SIGCONT)
                if part == "stage":
                    want = (["no answer"], ["not asked", "not asked"])
                else:
                    want = (["ok"], ["ok", "no answer"])
                got = ([x["status"] for x in b.get("stages", [])],
                       [x["status"] for x in b.get("shards", [])])
                check(st == 503 and b["status"] == "unavailable" and got == want
                      and HEALTH_TIMEOUT <= sec < HEALTH_TIMEOUT + 5,
                      f"{part} stopped: /health {st} in {sec:.1f} s: {b}")
                print(f"{part} stopped: /health {st} in {sec:.1f} s: {b.get('error')}")
                end = time.time() + 60
                while time.time() < end:
                    st, b, _ = health(s)
                    if st == 200:
                        break
                check(st == 200, f"{part} continued: /health {st} {b}")
            pid0 = rank_pid(s.proc.pid, 0)
            if pid0:
                os.kill(pid0, signal.SIGTERM)
            rc = s.proc.wait(timeout=120)
            check(rc == 0, f"mpirun exited {rc} after the coordinator drained")
    finally:
        rc, log = s.stop()
    check(rc == 0, f"{name}: exit {rc}: {log[-2000:]}")
    return answers, job, shards, dump(mem)


def main():
    mpirun = os.environ.get("MEMLLM_MPIRUN")
    if not mpirun:
        print("test_serve_mpi_memory: SKIP: no mpirun given")
        sys.exit(77)
    # As test_serve_mpi.py: the ranks without LeakSanitizer.
    asan = os.environ.get("ASAN_OPTIONS")
    launcher = ["env", f"ASAN_OPTIONS={asan + ':' if asan else ''}detect_leaks=0", mpirun,
                "--oversubscribe", "-np", "4"]
    if os.geteuid() == 0:
        launcher.insert(3, "--allow-run-as-root")
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="memllm-serve-mpi-memory-") as tmp:
        with open(os.path.join(tmp, "keys"), "w") as f:
            f.write("sk-rw\nsk-ro read-only\n")
        # Document 33's gold facts (as `memory dump` lists them) to write
        # over the API, and its first sentence to annotate (one: the write
        # loop is the slow part under the sanitizers).
        with open(os.path.join(os.environ["MEMLLM_DATA"], "redocred", "dev_revised.json")) as f:
            full = json.load(f)[33]
        doc_file, gold = os.path.join(tmp, "doc33.json"), os.path.join(tmp, "gold")
        with open(doc_file, "w") as f:
            json.dump([full], f)
        run("memory", "import-docred", doc_file, "--memory", gold)
        facts = [line.split("\t")[0] for line in dump(gold)]
        doc = {"id": full["title"], "sents": full["sents"][:1]}
        one = run_layout(tmp, "one", facts, doc)
        t1 = time.time()
        # Ranks: the coordinator, the stage, shard 0, shard 1.
        ranks = run_layout(tmp, "ranks", facts, doc, launcher=launcher, ranks=(0, 1, 2, 3))
        for (what, st, b), (what2, st2, b2) in zip(one[0], ranks[0]):
            check(what == what2 and st == st2 and b == b2,
                  f"{what}: one process {st} {b}\n1+1+2 ranks {st2} {b2}")
        check(len(one[0]) == len(ranks[0]), "the sessions differ in length")
        check(one[1] == ranks[1], f"annotate usage: one process {one[1]}, ranks {ranks[1]}")
        check(one[2] == ranks[2], f"per-shard requests: one process {one[2]}, ranks {ranks[2]}")
        check(one[3] == ranks[3] and one[3], "the memories differ after the session:\n"
              f"{one[3]}\nvs\n{ranks[3]}")
        print(f"{len(one[0])} calls answered alike; per-shard requests {one[2]}; "
              f"one process {t1 - t0:.1f} s, 1+1+2 ranks {time.time() - t1:.1f} s")
    if failures:
        sys.exit(f"test_serve_mpi_memory.py: {len(failures)} check(s) failed")
    print(f"test_serve_mpi_memory.py: all checks passed in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
