#!/usr/bin/env python3
"""memllm serve under mpirun with 1 + 2 + 2 ranks (the coordinator serving
HTTP, 2 pipeline stages, 2 memory shards), with the real `openai` client:

  - greedy completions give the text `memllm generate` gives in one process;
  - a `"memory": true` request reads through the shard ranks and answers
    with the text, clean text and read trace `memllm generate --memory`
    gives in one process;
  - two requests at once run in the two groups of the flowing schedule
    (--micro-batches 2: one group's batch in the stages while the other
    samples): the same texts, and /health asked meanwhile answers 200 with
    both stages "ok" every time;
  - SIGTERM to the coordinator with a request in flight: the request is
    answered in full, every rank stops and mpirun exits 0.

    test_serve_mpi.py
Environment (set by ctest): as tests/serve/test_serve.py, and MEMLLM_MPIRUN
(mpirun; the test is skipped, exit 77, without one).
"""
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_serve import (MR, PROMPTS, Server, call, check, failures,  # noqa: E402
                        generate_all, memory_case, without_latency)


def rank0(mpirun_pid):
    """The pid of rank 0 (the coordinator) among mpirun's children."""
    for pid in subprocess.run(["pgrep", "-P", str(mpirun_pid)], capture_output=True,
                              text=True).stdout.split():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if b"OMPI_COMM_WORLD_RANK=0\0" in f.read():
                    return int(pid)
        except OSError:
            continue
    return None


def main():
    mpirun = os.environ.get("MEMLLM_MPIRUN")
    if not mpirun:
        print("test_serve_mpi: SKIP: no mpirun given")
        sys.exit(77)
    # Open MPI's own allocations show as leaks without a usable stack under
    # LeakSanitizer: the ranks run without it (as in tests/CMakeLists.txt);
    # the one-process runs here still check leaks.
    asan = os.environ.get("ASAN_OPTIONS")
    launcher = ["env", f"ASAN_OPTIONS={asan + ':' if asan else ''}detect_leaks=0", mpirun,
                "--oversubscribe", "-np", "5"]
    if os.geteuid() == 0:
        launcher.insert(3, "--allow-run-as-root")
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="memllm-serve-mpi-") as tmp:
        mem, prompt, want = memory_case(tmp, "--memshards", "2")
        base = generate_all(PROMPTS[:3], 24)
        s = Server("--adapter", f"mr={MR}", "--memory", mem, "--stages", "2", "--memshards", "2",
                   "--micro-batches", "2", launcher=launcher)
        try:
            for p, w in zip(PROMPTS[:2], base):
                r = s.client.completions.create(model="SmolLM2-135M-Instruct.Q4_1", prompt=p,
                                                max_tokens=24, temperature=0)
                check(r.choices[0].text == w, f"1+2+2 ranks {r.choices[0].text!r}, one process "
                      f"{w!r} for {p!r}")
            # Both at once, /health polled until both are answered.
            texts, probes = {}, []

            def complete(i):
                a = s.client.completions.create(model="SmolLM2-135M-Instruct.Q4_1",
                                                prompt=PROMPTS[i], max_tokens=24, temperature=0)
                texts[i] = a.choices[0].text

            both = [threading.Thread(target=complete, args=(i,)) for i in range(2)]
            for t in both:
                t.start()
            while any(t.is_alive() for t in both):
                st, _, b = call(s.url + "/health")
                probes.append((st, [x.get("status") for x in b.get("stages", [])]
                               if isinstance(b, dict) else b))
                time.sleep(0.05)
            for t in both:
                t.join()
            check([texts.get(i) for i in range(2)] == base[:2],
                  f"two requests at once on 1+2+2 ranks {texts}, one process {base[:2]}")
            check(probes and all(p == (200, ["ok", "ok"]) for p in probes),
                  f"/health while two requests ran: {probes}")
            print(f"test_serve_mpi: {len(probes)} health checks while two requests ran")
            r = s.client.completions.create(model="mr", prompt=prompt, max_tokens=40,
                                            temperature=0, extra_body={"memory": True})
            choice = r.choices[0].model_dump()
            mm = choice.get("memllm") or {}
            check(mm.get("reads") and mm.get("text") == want["text"]
                  and choice["text"] == want["text_without_api"]
                  and without_latency(mm.get("reads") or [], 2)
                  == without_latency(want["reads"], 2),
                  f"memory request on 1+2+2 ranks {mm}, one process {want}")
            # SIGTERM to the coordinator while a request runs.
            answer = {}

            def in_flight():
                a = s.client.completions.create(model="SmolLM2-135M-Instruct.Q4_1",
                                                prompt=PROMPTS[2], max_tokens=24, temperature=0)
                answer["text"] = a.choices[0].text

            t = threading.Thread(target=in_flight)
            t.start()
            time.sleep(1.0)
            pid = rank0(s.proc.pid)
            check(pid is not None, "no rank 0 among mpirun's children")
            if pid:
                os.kill(pid, signal.SIGTERM)
            t.join(timeout=120)
            check(answer.get("text") == base[2],
                  f"the request in flight at SIGTERM got {answer.get('text')!r}, want {base[2]!r}")
            rc = s.proc.wait(timeout=120)
            check(rc == 0, f"mpirun exited {rc} after the coordinator drained")
            left = subprocess.run(["pgrep", "-P", str(s.proc.pid)], capture_output=True,
                                  text=True).stdout.split()
            check(not left, f"ranks left running: {left}")
        finally:
            rc, log = s.stop()
        check("drained" in log, f"no word of the drain: {log[-2000:]}")
    if failures:
        sys.exit(f"test_serve_mpi.py: {len(failures)} check(s) failed")
    print(f"test_serve_mpi.py: all checks passed in {time.time() - t0:.1f} s")


if __name__ == "__main__":
    main()
