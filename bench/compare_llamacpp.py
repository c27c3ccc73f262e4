#!/usr/bin/env python3
"""memllm vs llama.cpp on the same GGUF file, same machine, same threads, one run.

Runs build/bench/bench_engine and llama.cpp (llama-cpp-python) each in its own
process, one after the other, and prints both sides' figures and the ratios:
prefill tokens/s (512-token prompt), decode tokens/s (128 tokens), memllm's
decode as a fraction of the memory roofline, and peak RSS against the weight
file plus the KV cache.

    python3 bench/compare_llamacpp.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
                                      [--threads N] [--prompt 512] [--decode 128]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

LLAMA_SIDE = r"""
import json, resource, sys, time
import numpy as np
from llama_cpp import Llama
model, threads, n_prompt, n_decode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
llm = Llama(model_path=model, n_threads=threads, n_threads_batch=threads, n_ctx=n_prompt + n_decode + 8,
            n_batch=n_prompt, n_ubatch=n_prompt, logits_all=False, verbose=False)
vocab = llm.n_vocab()
ids = [(i * 7919 + 13) % vocab for i in range(n_prompt)]
llm.eval(ids[:8]); llm.reset()                      # warm-up: page in the weights
t0 = time.perf_counter(); llm.eval(ids); prefill = time.perf_counter() - t0
t0 = time.perf_counter()
for _ in range(n_decode):
    # Without logits_all, llama-cpp-python keeps no scores: read the last
    # token's logits from the context, as its sampler does.
    tok = int(np.argmax(np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(vocab,))))
    llm.eval([tok])
decode = time.perf_counter() - t0
print(json.dumps({"prefill_tokens_per_s": n_prompt / prefill, "decode_tokens_per_s": n_decode / decode,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}))
"""


def memllm_side(binary, model, threads, n_prompt, n_decode):
    # libgomp's spinning barriers stall when another process holds a core;
    # a short spin keeps full speed on a quiet machine too (README, Threads).
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    env.setdefault("GOMP_SPINCOUNT", "10000")
    out = subprocess.run([binary, model, str(n_prompt), str(n_decode)], env=env, check=True,
                         capture_output=True, text=True).stdout
    figures = {}
    for line in out.splitlines():
        key, _, value = line.partition(": ")
        try:
            figures[key] = float(value)
        except ValueError:
            figures[key] = value
    return figures


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--binary", default=os.path.join(REPO, "build", "bench", "bench_engine"))
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--decode", type=int, default=128)
    a = ap.parse_args()

    mem = memllm_side(a.binary, a.model, a.threads, a.prompt, a.decode)
    llama = json.loads(subprocess.run([sys.executable, "-c", LLAMA_SIDE, a.model, str(a.threads), str(a.prompt),
                                       str(a.decode)], check=True, capture_output=True, text=True).stdout)
    file_mib = os.path.getsize(a.model) / 2**20
    kv_mib = mem["kv_cache_bytes"] / 2**20
    print(f"model: {a.model} ({file_mib:.1f} MiB)")
    print(f"threads: {a.threads}")
    print(f"{'':24}{'memllm':>12}{'llama.cpp':>12}{'ratio':>8}")
    for key, label in (("prefill_tokens_per_s", f"prefill tok/s ({a.prompt})"),
                       ("decode_tokens_per_s", f"decode tok/s ({a.decode})"),
                       ("peak_rss_mib", "peak RSS MiB")):
        print(f"{label:24}{mem[key]:12.1f}{llama[key]:12.1f}{mem[key] / llama[key]:8.2f}")
    print(f"memllm decode / DRAM roofline: {mem['decode_fraction_of_roofline']:.3f} "
          f"(1 GiB read bandwidth {mem['read_bandwidth_gb_s']:.1f} GB/s, "
          f"{mem['weight_bytes_per_token'] / 2**20:.1f} MiB of weights per token)")
    print(f"memllm decode / working-set roofline: {mem['decode_fraction_of_working_set_roofline']:.3f} "
          f"(read bandwidth over a buffer the size of one token's reads "
          f"{mem['read_bandwidth_working_set_gb_s']:.1f} GB/s: the weights may sit in the last-level cache)")
    print(f"memllm peak RSS / (weight file + KV cache): {mem['peak_rss_mib'] / (file_mib + kv_mib):.2f}")


if __name__ == "__main__":
    main()
