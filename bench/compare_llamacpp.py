#!/usr/bin/env python3
"""memllm vs llama.cpp on the same GGUF file, same machine, same threads, one run.

memllm's side is build/bench/bench_engine; llama.cpp's is its own llama-bench,
built by deploy/install-deps.sh --tools (deploy/build-llamacpp-peer.sh) into
.peer/ from the llama.cpp that llama-cpp-python's sdist vendors. Each round
runs both, in alternating order; the figures are the medians over the rounds:

  prefill  tokens/s of a PROMPT-token prompt from an empty cache
           (bench_engine; llama-bench -p PROMPT -n 0)
  decode   tokens/s of DECODE tokens, one at a time, after that prompt
           (bench_engine; llama-bench -p 0 -n DECODE -d PROMPT, which fills
           the cache to PROMPT tokens before timing, untimed)

and the ratios memllm/llama.cpp, memllm's decode as a fraction of its memory
roofline (as bench_engine measures it), each side's peak RSS, and which
llama.cpp build was measured. Output: 'name: value' lines on stdout (--json:
one JSON object); progress on stderr.

    python3 bench/compare_llamacpp.py [--model models/SmolLM2-135M-Instruct.Q4_1.gguf]
        [--threads N] [--prompt 512] [--decode 128] [--rounds 3] [--reps 3] [--json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def fail(msg):
    sys.exit(f"compare_llamacpp.py: {msg}")


def run_child(cmd, env):
    """Runs cmd; returns (stdout, peak RSS MiB of that process)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if p.returncode != 0:
            tail = err.read().decode(errors="replace").strip().splitlines()[-15:]
            fail(f"{' '.join(cmd)} exited with status {p.returncode}:\n" + "\n".join(tail))
        return out.read().decode(), usage.ru_maxrss / 1024.0


def memllm_env(threads):
    # libgomp's spinning barriers stall when another process holds a core;
    # a short spin, then sleep, keeps full speed on a quiet machine too
    # (README, Threads).
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    env.setdefault("GOMP_SPINCOUNT", "10000")
    env.setdefault("OMP_WAIT_POLICY", "passive")
    return env


def memllm_round(a, env):
    out, _ = run_child([a.binary, a.model, str(a.prompt), str(a.decode)], env)
    figures = {}
    for line in out.splitlines():
        key, _, value = line.partition(": ")
        try:
            figures[key] = float(value)
        except ValueError:
            figures[key] = value
    for key in ("prefill_tokens_per_s", "decode_tokens_per_s", "decode_fraction_of_roofline", "peak_rss_mib"):
        if key not in figures:
            fail(f"{a.binary} printed no '{key}:' line")
    # bench_engine's own peak_rss_mib is taken before its bandwidth probe,
    # whose 1 GiB buffer is not the engine's: that one, not the process's.
    return figures


def llama_bench(a, args):
    # llama.cpp runs as its users run it: the caller's environment, its own
    # defaults for everything but the threads.
    cmd = [a.llama_bench, "-m", a.model, "-t", str(a.threads), "-r", str(a.reps), "-o", "json"] + args
    out, rss = run_child(cmd, dict(os.environ))
    try:
        tests = json.loads(out)
    except json.JSONDecodeError:
        fail(f"{' '.join(cmd)} printed no JSON:\n{out[:2000]}")
    if len(tests) != 1:
        fail(f"{' '.join(cmd)} ran {len(tests)} tests, expected 1")
    return tests[0], rss


def llama_round(a):
    pp, rss_pp = llama_bench(a, ["-p", str(a.prompt), "-n", "0"])
    tg, rss_tg = llama_bench(a, ["-p", "0", "-n", str(a.decode), "-d", str(a.prompt)])
    return {"prefill_tokens_per_s": pp["avg_ts"], "decode_tokens_per_s": tg["avg_ts"],
            "peak_rss_mib": max(rss_pp, rss_tg), "pp": pp, "tg": tg}


def read_info(path):
    info = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition(": ")
                info[key] = value
    except OSError:
        pass
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--binary", default=os.path.join(REPO, "build", "bench", "bench_engine"),
                    help="memllm's bench_engine (default: build/bench/bench_engine)")
    ap.add_argument("--llama-bench", default=os.path.join(REPO, ".peer", "llama-bench"),
                    help="llama.cpp's llama-bench (default: .peer/llama-bench)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--prompt", type=int, default=512, help="prompt tokens (default 512)")
    ap.add_argument("--decode", type=int, default=128, help="decoded tokens (default 128)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of both sides, interleaved (default 3)")
    ap.add_argument("--reps", type=int, default=3, help="llama-bench repetitions per test per round (default 3)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of 'name: value' lines")
    a = ap.parse_args()

    if not os.path.isfile(a.model):
        fail(f"model {a.model} not found: run deploy/fetch-models.sh")
    if not os.access(a.binary, os.X_OK):
        fail(f"memllm's {a.binary} not found: run deploy/build.sh")
    if not os.access(a.llama_bench, os.X_OK):
        fail(f"llama.cpp's llama-bench not found at {a.llama_bench}: run deploy/install-deps.sh --tools")
    if min(a.threads, a.prompt, a.decode, a.rounds, a.reps) < 1:
        fail("--threads, --prompt, --decode, --rounds and --reps must be at least 1")

    env = memllm_env(a.threads)
    load_start = os.getloadavg()[0]
    mem_rounds, llama_rounds = [], []
    for r in range(a.rounds):
        # Alternate which side goes first, so that neither always gets the
        # machine right after the other has warmed or loaded it.
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for side in order:
            if side == 0:
                mem_rounds.append(memllm_round(a, env))
            else:
                llama_rounds.append(llama_round(a))
        m, l = mem_rounds[-1], llama_rounds[-1]
        print(f"round {r + 1}/{a.rounds}: prefill memllm {m['prefill_tokens_per_s']:.1f} llama.cpp "
              f"{l['prefill_tokens_per_s']:.1f}, decode memllm {m['decode_tokens_per_s']:.2f} llama.cpp "
              f"{l['decode_tokens_per_s']:.2f} tokens/s", file=sys.stderr, flush=True)

    def med(rounds, key):
        return statistics.median(x[key] for x in rounds)

    def each(rounds, key, fmt):
        return ",".join(fmt.format(x[key]) for x in rounds)

    info = read_info(a.llama_bench + ".info")
    pp, tg = llama_rounds[0]["pp"], llama_rounds[0]["tg"]
    file_mib = os.path.getsize(a.model) / 2**20
    m0 = mem_rounds[0]
    mem_rss = max(x["peak_rss_mib"] for x in mem_rounds)
    llama_rss = max(x["peak_rss_mib"] for x in llama_rounds)
    res = {}
    res["model"] = a.model
    res["model_mib"] = round(file_mib, 1)
    res["threads"] = a.threads
    res["prompt_tokens"] = a.prompt
    res["decode_tokens"] = a.decode
    res["rounds"] = a.rounds
    # Other processes' load during the run: figures from a busy machine vary.
    res["load_average_1min_start"] = round(load_start, 2)
    res["load_average_1min_end"] = round(os.getloadavg()[0], 2)
    for key, name in (("prefill_tokens_per_s", "prefill"), ("decode_tokens_per_s", "decode")):
        mv, lv = med(mem_rounds, key), med(llama_rounds, key)
        res[f"memllm_{name}_tokens_per_s"] = round(mv, 2)
        res[f"llamacpp_{name}_tokens_per_s"] = round(lv, 2)
        res[f"{name}_ratio"] = round(mv / lv, 3)
        res[f"memllm_{name}_rounds"] = each(mem_rounds, key, "{:.2f}")
        res[f"llamacpp_{name}_rounds"] = each(llama_rounds, key, "{:.2f}")
    res["memllm_decode_fraction_of_roofline"] = round(med(mem_rounds, "decode_fraction_of_roofline"), 3)
    res["memllm_decode_roofline_tokens_per_s"] = round(med(mem_rounds, "decode_roofline_tokens_per_s"), 2)
    res["memllm_read_bandwidth_gb_s"] = round(med(mem_rounds, "read_bandwidth_gb_s"), 2)
    res["memllm_decode_fraction_of_working_set_roofline"] = round(
        med(mem_rounds, "decode_fraction_of_working_set_roofline"), 3)
    res["memllm_read_bandwidth_working_set_gb_s"] = round(med(mem_rounds, "read_bandwidth_working_set_gb_s"), 2)
    res["memllm_weight_mib_per_token"] = round(m0["weight_bytes_per_token"] / 2**20, 1)
    res["memllm_peak_rss_mib"] = round(mem_rss, 1)
    res["llamacpp_peak_rss_mib"] = round(llama_rss, 1)
    res["peak_rss_ratio"] = round(mem_rss / llama_rss, 3)
    res["memllm_peak_rss_over_file_plus_kv"] = round(mem_rss / (file_mib + m0["kv_cache_bytes"] / 2**20), 2)
    res["memllm_binary"] = a.binary
    res["memllm_env"] = " ".join(f"{k}={env[k]}" for k in ("OMP_NUM_THREADS", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY"))
    res["memllm_kv_cache_type"] = "f32"
    res["llamacpp_binary"] = a.llama_bench
    res["llamacpp_build_commit"] = pp.get("build_commit", "unknown")
    # The sdist vendors a shallow clone, so llama-bench's build number (git
    # rev-list --count) is 1, not a release number: the commit names the build.
    res["llamacpp_build_number"] = pp.get("build_number", "unknown")
    res["llamacpp_sdist"] = info.get("sdist", "unknown")
    res["llamacpp_sdist_sha256"] = info.get("sdist_sha256", "unknown")
    res["llamacpp_compiler"] = info.get("compiler", "unknown")
    res["llamacpp_cmake_flags"] = info.get("cmake_flags", "unknown")
    res["llamacpp_cpu_info"] = pp.get("cpu_info", "unknown")
    res["llamacpp_backends"] = pp.get("backends", "unknown")
    res["llamacpp_kv_cache_type"] = f"{tg.get('type_k', '?')}/{tg.get('type_v', '?')}"
    res["llamacpp_flash_attn"] = {-1: "auto", 0: "off", 1: "on"}.get(tg.get("flash_attn"), "unknown")
    res["llamacpp_n_batch"] = pp.get("n_batch", "unknown")
    res["llamacpp_n_ubatch"] = pp.get("n_ubatch", "unknown")
    res["llamacpp_reps_per_round"] = a.reps
    res["llamacpp_decode_depth"] = tg.get("n_depth", a.prompt)

    if a.json:
        print(json.dumps(res, indent=1))
    else:
        for key, value in res.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
