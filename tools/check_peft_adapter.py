#!/usr/bin/env python3
"""Loads an adapter with HF PEFT and compares its logits with memllm's.

    python3 tools/check_peft_adapter.py --model DIR --adapter DIR --tokens 1,2,3 \\
        --logits FILE.f32 [--tol 1e-4]
    python3 tools/check_peft_adapter.py --model DIR --adapter DIR --tokens 1,2,3 --write FILE.f32

The base checkpoint (a HF model directory) is loaded in float32 with eager
attention and the adapter directory (PEFT layout: adapter_config.json +
adapter_model.safetensors, e.g. what `memllm train` writes) with
PeftModel.from_pretrained, exactly as a PEFT user would load it. The tokens
run as one sequence, no BOS added. FILE.f32 is raw little-endian float32,
row-major [n_tokens][vocab_size], as memllm and the fixtures write logits.

With --logits, exits 1 when the largest |PEFT - FILE| exceeds --tol (or the
shapes differ), 0 otherwise, and prints the difference either way. With
--write, writes PEFT's logits to FILE.f32 instead. Adapter loading errors
and warnings (e.g. tensors PEFT does not expect) are PEFT's own.
"""
import argparse
import sys
import warnings

import numpy as np
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM


def peft_logits(model_dir, adapter_dir, ids):
    """PEFT's logits [len(ids), vocab] (float32 numpy) with the adapter.
    PEFT only warns about tensors it ignores; those are made errors here so
    a misnamed tensor cannot pass as a no-op."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*(missing|unexpected|Found missing).*")
        model = PeftModel.from_pretrained(model, adapter_dir)
    model.eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float().numpy()


def parse_tokens(text):
    try:
        ids = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of token ids: {text!r}")
    if not ids or min(ids) < 0:
        raise argparse.ArgumentTypeError("needs one or more non-negative token ids")
    return ids


def main():
    # transformers' deprecation notices are not about the adapter
    warnings.filterwarnings("ignore", category=FutureWarning)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="base HF model directory")
    ap.add_argument("--adapter", required=True, help="PEFT adapter directory")
    ap.add_argument("--tokens", required=True, type=parse_tokens, help="comma-separated token ids")
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--logits", help="memllm's logits to compare (f32 LE [n_tokens][vocab])")
    what.add_argument("--write", help="write PEFT's logits here instead")
    ap.add_argument("--tol", type=float, default=1e-4, help="largest |PEFT - memllm| allowed (default 1e-4)")
    args = ap.parse_args()

    try:
        got = peft_logits(args.model, args.adapter, args.tokens)
    except UserWarning as w:
        print(f"PEFT does not load {args.adapter} cleanly: {w}")
        return 1
    if args.write:
        got.astype("<f4").tofile(args.write)
        print(f"wrote PEFT's logits [{got.shape[0]}, {got.shape[1]}] to {args.write}")
        return 0
    theirs = np.fromfile(args.logits, dtype="<f4")
    if theirs.size != got.size:
        print(f"{args.logits}: {theirs.size} floats, PEFT gives {got.shape[0]} x {got.shape[1]} = {got.size}")
        return 1
    theirs = theirs.reshape(got.shape)
    diff = np.abs(theirs.astype(np.float64) - got)
    worst = np.unravel_index(int(diff.argmax()), diff.shape)
    ok = bool(np.isfinite(theirs).all()) and float(diff.max()) <= args.tol
    print(f"{'OK' if ok else 'MISMATCH'}: max |PEFT - {args.logits}| = {diff.max():.3g} "
          f"(tol {args.tol:g}) at token {worst[0]}, vocab id {worst[1]}; max |logit| {np.abs(got).max():.3g}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
