#!/usr/bin/env python3
"""GPU speed: memllm's CUDA stage vs HF transformers (PyTorch CUDA) on the same shapes.

  python3 bench/compare_hf_cuda.py --bench BUILD/bench/bench_cuda \\
      [--shape mistral7b|smollm2] [--prompt 128] [--decode 128] [--batch 32] [--prefill 2048]

Runs bench_cuda (random bf16 weights of the shape), then builds the same
configuration in transformers with random bf16 weights on the same GPU and
measures, as bench_cuda does: greedy decode tokens/s at batch 1 and at
--batch after a --prompt-token prompt (generate's time for --decode tokens
minus its time for one token, so the prompt is not counted), and one
--prefill-token forward (tokens/s and TFLOP/s by the same flop count).
Prints both sets of figures and memllm / HF ratios (the issue's target at
batch 1 is >= 1.5), for memllm's batch-invariant numerics (the default) and
its fast ones (--cuda-fast; fast_bf16: bf16 GEMMs on one bf16 of the
activations, as PyTorch), and what the invariance costs (invariant / fast).
bench_cuda runs first and exits before PyTorch takes the GPU, so neither
holds memory the other needs.
"""
import argparse
import re
import subprocess
import time

SHAPES = {
    # Mistral-7B-v0.1
    "mistral7b": dict(arch="mistral", hidden_size=4096, intermediate_size=14336,
                      num_attention_heads=32, num_key_value_heads=8, head_dim=128,
                      num_hidden_layers=32, vocab_size=32000, max_position_embeddings=32768,
                      sliding_window=4096, rope_theta=10000.0, rms_norm_eps=1e-5,
                      tie_word_embeddings=False),
    # SmolLM2-135M
    "smollm2": dict(arch="llama", hidden_size=576, intermediate_size=1536,
                    num_attention_heads=9, num_key_value_heads=3, head_dim=64,
                    num_hidden_layers=30, vocab_size=49152, max_position_embeddings=8192,
                    rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True),
}


def run_bench(args):
    cmd = [args.bench, "--shape", args.shape, "--prompt", str(args.prompt), "--decode",
           str(args.decode), "--batch", str(args.batch), "--prefill", str(args.prefill)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    print(out, end="")
    if out.startswith("SKIP"):
        raise SystemExit(0)
    return {k: v for k, v in re.findall(r"^(\w+): (.*)$", out, re.M)}


def hf_model(shape):
    import torch
    from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig
    spec = dict(SHAPES[shape])
    arch = spec.pop("arch")
    cfg = (MistralConfig if arch == "mistral" else LlamaConfig)(**spec)
    with torch.device("cuda"):
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16)
    return model.eval(), cfg


def timed(fn):
    import torch
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def hf_decode_rate(model, cfg, batch, prompt, steps):
    import torch
    ids = torch.randint(0, cfg.vocab_size, (batch, prompt), device="cuda")

    def gen(n):
        return lambda: model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n,
                                      min_new_tokens=n, do_sample=False, pad_token_id=0)
    gen(2)()  # warm-up
    t1 = min(timed(gen(1)) for _ in range(2))
    tn = min(timed(gen(steps)) for _ in range(2))
    return batch * (steps - 1) / (tn - t1)


def hf_prefill_seconds(model, cfg, tokens):
    import torch
    ids = torch.randint(0, cfg.vocab_size, (1, tokens), device="cuda")
    run = lambda: model(ids, use_cache=True, logits_to_keep=1)
    run()
    return min(timed(run) for _ in range(3))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bench", required=True, help="the bench_cuda program")
    ap.add_argument("--shape", default="mistral7b", choices=sorted(SHAPES))
    ap.add_argument("--prompt", type=int, default=128)
    ap.add_argument("--decode", type=int, default=128)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--prefill", type=int, default=2048)
    args = ap.parse_args()

    ours = run_bench(args)

    import torch
    import transformers
    model, cfg = hf_model(args.shape)
    with torch.inference_mode():
        b1 = hf_decode_rate(model, cfg, 1, args.prompt, args.decode)
        bb = hf_decode_rate(model, cfg, args.batch, args.prompt, args.decode)
        sec = hf_prefill_seconds(model, cfg, args.prefill)
    matmul_params = sum(p.numel() for n, p in model.named_parameters()
                        if n.endswith("proj.weight"))
    q_dim = cfg.num_attention_heads * cfg.head_dim
    flops = (2.0 * matmul_params * args.prefill
             + 4.0 * cfg.num_hidden_layers * q_dim * args.prefill * (args.prefill + 1) / 2)
    print(f"hf: transformers {transformers.__version__}, torch {torch.__version__}, "
          f"{torch.cuda.get_device_name()}, bf16, attention {model.config._attn_implementation}")
    print(f"hf_decode_b1_tokens_per_s: {b1:.1f}")
    print(f"hf_decode_batch_tokens_per_s: {bb:.1f}")
    print(f"hf_prefill_tokens_per_s: {args.prefill / sec:.0f}")
    print(f"hf_prefill_tflops: {flops / sec / 1e12:.1f}")
    hf_rate = args.prefill / sec
    for mode in ("", "fast_"):
        print(f"ratio_{mode}decode_b1: {float(ours[mode + 'decode_b1_tokens_per_s']) / b1:.2f}"
              " (target >= 1.5)")
        print(f"ratio_{mode}decode_batch: "
              f"{float(ours[mode + 'decode_batch_tokens_per_s']) / bb:.2f}")
    for mode in ("", "fast_", "fast_bf16_"):
        print(f"ratio_{mode}prefill: {float(ours[mode + 'prefill_tokens_per_s']) / hf_rate:.2f}")
    for key in ("cost_decode_b1", "cost_decode_batch", "cost_prefill"):
        print(f"{key} (invariant / fast): {ours[key]}")


if __name__ == "__main__":
    main()
