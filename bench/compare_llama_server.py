#!/usr/bin/env python3
"""Serving: memllm serve against llama.cpp's OpenAI-compatible server
(llama-cpp-python's `python3 -m llama_cpp.server`) on the same GGUF, the
same threads and the same requests, one server at a time on loopback.

  python3 bench/compare_llama_server.py [--memllm build/coordinator/memllm]
      [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf] [--threads 2]
      [--clients 1,4,8] [--requests 4] [--max-tokens 64] [--png FILE]

For each number of concurrent clients, each client sends --requests
streaming greedy completions one after the other (prompts from a fixed
list); measured per server: output tokens/s over the run, time to first
token (p50, p99) and time per output token after the first (p50). Prints a
table and the ratios memllm / llama.cpp; --png draws throughput and time to
first token against the clients (matplotlib). memllm batches every client's
requests into one continuous batch (--batch = the most clients); the
llama.cpp server answers one request at a time. Needs
`deploy/install-deps.sh --tools` (llama-cpp-python and its server extras).
Run it on a quiet machine: figures from a loaded one mean little.
"""
import argparse
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PROMPTS = ["The capital of France is", "Once upon a time, in a small village,",
           "def fibonacci(n):", "The three primary colours are",
           "Write a short poem about the sea:", "The history of the Roman Empire"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port, proc, seconds=300):
    t0 = time.time()
    while time.time() - t0 < seconds:
        if proc.poll() is not None:
            sys.exit(f"the server exited {proc.returncode} before it was ready")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/v1/models")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    sys.exit(f"no server on port {port} after {seconds} s")


def start_memllm(args, port):
    cmd = [args.memllm, "serve", "--model", args.gguf, "--port", str(port), "--threads",
           str(args.threads), "--batch", str(max(args.clients))]
    env = dict(os.environ, OMP_WAIT_POLICY="passive")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start_llama(args, port):
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", args.gguf, "--host", "127.0.0.1",
           "--port", str(port), "--n_threads", str(args.threads), "--n_ctx", "2048"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stream_one(port, prompt, max_tokens):
    """One streaming completion: (time to first token, [times of the later
    tokens' chunks], output tokens)."""
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    t0 = time.time()
    conn.request("POST", "/v1/completions", json.dumps(body),
                 {"Content-Type": "application/json"})
    r = conn.getresponse()
    if r.status != 200:
        raise RuntimeError(f"status {r.status}: {r.read()[:300]!r}")
    stamps = []
    for raw in r:
        line = raw.decode().strip()
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        chunk = json.loads(line[len("data: "):])
        if chunk.get("choices") and chunk["choices"][0].get("text"):
            stamps.append(time.time() - t0)
    conn.close()
    if not stamps:
        raise RuntimeError("no text streamed")
    return stamps[0], [b - a for a, b in zip(stamps, stamps[1:])], len(stamps)


def load(port, clients, requests, max_tokens):
    """clients concurrent clients, requests each: tokens/s, TTFT p50 and
    p99, time per output token p50 (ms)."""
    ttft, gaps, tokens, errors = [], [], [0], []
    lock = threading.Lock()

    def client(c):
        for i in range(requests):
            try:
                first, g, n = stream_one(port, PROMPTS[(c + i) % len(PROMPTS)], max_tokens)
            except (OSError, RuntimeError, ValueError) as e:
                with lock:
                    errors.append(str(e))
                return
            with lock:
                ttft.append(first)
                gaps.extend(g)
                tokens[0] += n

    t0 = time.time()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    elapsed = time.time() - t0
    if errors:
        sys.exit(f"requests failed: {errors[:3]}")

    def pct(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(p * len(xs)))] * 1e3 if xs else float("nan")

    return tokens[0] / elapsed, pct(ttft, 0.5), pct(ttft, 0.99), pct(gaps, 0.5)


def measure(name, start, args):
    port = free_port()
    proc = start(args, port)
    try:
        wait_ready(port, proc)
        stream_one(port, PROMPTS[0], 4)  # warm-up
        return {c: load(port, c, args.requests, args.max_tokens) for c in args.clients}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memllm", default=os.path.join(ROOT, "build", "coordinator", "memllm"))
    ap.add_argument("--gguf", default=os.path.join(ROOT, "models",
                                                   "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--clients", default="1,4,8")
    ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--png", help="plot throughput and time to first token to this file")
    args = ap.parse_args()
    args.clients = [int(c) for c in re.split(r"[, ]+", args.clients) if c]
    try:
        import llama_cpp
        import llama_cpp.server  # noqa: F401
    except ImportError as e:
        sys.exit(f"llama-cpp-python with its server extras is needed ({e}): "
                 "deploy/install-deps.sh --tools")
    mem = measure("memllm", start_memllm, args)
    lla = measure("llama.cpp", start_llama, args)
    print(f"setup: {os.path.basename(args.gguf)}, {args.threads} threads, {args.requests} "
          f"streaming greedy requests of {args.max_tokens} tokens per client; peer "
          f"llama-cpp-python {llama_cpp.__version__} (llama_cpp.server)")
    print(f"{'clients':>7} {'server':>10} {'tok/s':>8} {'TTFT p50 ms':>12} {'TTFT p99 ms':>12} "
          f"{'TPOT p50 ms':>12}")
    for c in args.clients:
        for name, res in (("memllm", mem[c]), ("llama.cpp", lla[c])):
            print(f"{c:>7} {name:>10} {res[0]:>8.1f} {res[1]:>12.0f} {res[2]:>12.0f} "
                  f"{res[3]:>12.1f}")
    for c in args.clients:
        print(f"ratio_tokens_per_s clients={c} (memllm / llama.cpp): {mem[c][0] / lla[c][0]:.2f}")
    if args.png:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
        for name, res in (("memllm serve", mem), ("llama.cpp server", lla)):
            a.plot(args.clients, [res[c][0] for c in args.clients], "o-", label=name)
            b.plot(args.clients, [res[c][1] for c in args.clients], "o-", label=name)
        a.set(xlabel="concurrent clients", ylabel="output tokens/s", title="throughput")
        b.set(xlabel="concurrent clients", ylabel="ms", title="time to first token (p50)")
        a.legend()
        b.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=110)
        print(f"plot: {args.png}")


if __name__ == "__main__":
    main()
