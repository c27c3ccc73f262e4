#!/usr/bin/env python3
"""Records what llama.cpp computes on the real SmolLM2-135M-Instruct Q4_1
GGUF (deploy/fetch-models.sh fetches it), so memllm's GGUF loader, Q4_1/Q8_0
kernels and byte-level tokenizer can be checked on a real model.

    python3 tools/make_llamacpp_reference.py [--model FILE] [--out FILE] [--data DIR]

Writes tests/fixtures/llamacpp/smollm2_q4_1.json:

    model, model_sha256, llama_cpp_python_version,
    text                 the Re-DocRED text that was tokenised (the start of
                         dev_revised.json, documents' sentences joined by
                         spaces); input_ids are the first 513 of its tokens
    input_ids            513 ids, as llama.cpp tokenises text (BOS only if
                         the GGUF asks for it: add_bos below)
    top1                 [512] llama.cpp's argmax at positions 0..511
    top1_margin          [512] its top-1 minus top-2 logit there (a quantized
                         implementation that rounds differently may pick
                         another token where this is tiny)
    target_logprob       [512] log-softmax of input_ids[i+1] at position i
    ppl                  exp(-mean(target_logprob))
    greedy_prompt, greedy_prompt_ids, greedy_ids [32], greedy_min_margin
    add_bos, bos_token_id, eos_token_id   the GGUF's tokenizer settings
    hf_dequantized       how far a second implementation lands from llama.cpp
                         on the same input: HF transformers loading the GGUF
                         (weights dequantized to f32, f32 compute, whereas
                         llama.cpp also rounds activations to 8 bits for its
                         quantized dot products): its ppl, top-1 agreement,
                         mean/max |logprob difference|, and the largest
                         llama.cpp top-1 margin at which the two disagree.
                         A guide for the tolerances of memllm's tests.

Teacher-forced, logits_all, n_threads=2; greedy decoding is argmax of the
logits (no sampler, no stop at EOS).
"""

import argparse
import hashlib
import json
import os
from pathlib import Path

import llama_cpp
import numpy as np
import torch
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
N_INPUT = 513
N_GREEDY = 32
GREEDY_PROMPT = "The capital of France is"
N_CTX = 1024
N_THREADS = 2


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def redocred_text(data_dir, min_chars):
    """The first Re-DocRED dev documents, each as its sentences' tokens joined
    by spaces, documents joined by spaces, until at least min_chars long."""
    with open(data_dir / "redocred" / "dev_revised.json", encoding="utf-8") as f:
        docs = json.load(f)
    parts = []
    for doc in docs:
        parts.append(" ".join(" ".join(sent) for sent in doc["sents"]))
        if sum(len(p) + 1 for p in parts) >= min_chars:
            return " ".join(parts)
    raise RuntimeError(f"Re-DocRED dev has fewer than {min_chars} characters")


def log_softmax(logits):
    x = logits.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def top2_margin(logits):
    top2 = np.sort(logits, -1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


def compare_with_hf(model_path, input_ids, target_logprob, top1, margin):
    model = AutoModelForCausalLM.from_pretrained(model_path.parent, gguf_file=model_path.name, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        logits = model(torch.tensor([input_ids])).logits[0, :-1].numpy()
    hf_logprob = log_softmax(logits)[np.arange(len(input_ids) - 1), input_ids[1:]]
    diff = np.abs(hf_logprob - target_logprob)
    differs = logits.argmax(-1) != top1
    return {
        "ppl": float(np.exp(-hf_logprob.mean())),
        "top1_agreement": float(1.0 - differs.mean()),
        "mean_abs_logprob_diff": float(diff.mean()),
        "max_abs_logprob_diff": float(diff.max()),
        "max_margin_where_top1_differs": float(margin[differs].max()) if differs.any() else 0.0,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    models_dir = Path(os.environ.get("MEMLLM_MODELS_DIR", ROOT / "models"))
    parser.add_argument("--model", type=Path, default=models_dir / "SmolLM2-135M-Instruct.Q4_1.gguf")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "llamacpp" / "smollm2_q4_1.json")
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("MEMLLM_DATA", ROOT / "data")))
    args = parser.parse_args()
    if not args.model.is_file():
        raise SystemExit(f"{args.model}: not found; run deploy/fetch-models.sh first")

    llm = llama_cpp.Llama(model_path=str(args.model), n_ctx=N_CTX, n_batch=N_CTX, n_threads=N_THREADS,
                          n_threads_batch=N_THREADS, logits_all=True, verbose=False)
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm.model)))

    # About 4 characters per token in English; take twice that and cut.
    text = redocred_text(args.data, 8 * N_INPUT)
    all_ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
    assert len(all_ids) >= N_INPUT, f"text gave only {len(all_ids)} tokens"
    input_ids = all_ids[:N_INPUT]

    llm.reset()
    llm.eval(input_ids)
    logits = np.array(llm.scores[:N_INPUT - 1], dtype=np.float32)
    logprobs = log_softmax(logits)
    targets = np.array(input_ids[1:])
    target_logprob = logprobs[np.arange(N_INPUT - 1), targets]
    ppl = float(np.exp(-target_logprob.mean()))

    top1 = logits.argmax(-1)
    margin = top2_margin(logits)
    hf = compare_with_hf(args.model, input_ids, target_logprob, top1, margin)

    greedy_prompt_ids = llm.tokenize(GREEDY_PROMPT.encode("utf-8"), add_bos=True, special=False)
    llm.reset()
    llm.eval(greedy_prompt_ids)
    greedy_ids, margins = [], []
    for _ in range(N_GREEDY):
        last = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        margins.append(float(top2_margin(last)))
        greedy_ids.append(int(last.argmax()))
        llm.eval([greedy_ids[-1]])

    reference = {
        "model": args.model.name,
        "model_sha256": sha256_of(args.model),
        "llama_cpp_python_version": llama_cpp.__version__,
        "n_threads": N_THREADS,
        "add_bos": add_bos,
        "bos_token_id": int(llm.token_bos()),
        "eos_token_id": int(llm.token_eos()),
        "text": text,
        "input_ids": [int(i) for i in input_ids],
        "top1": [int(i) for i in top1],
        "top1_margin": [round(float(m), 5) for m in margin],
        "target_logprob": [float(x) for x in target_logprob],
        "ppl": ppl,
        "greedy_prompt": GREEDY_PROMPT,
        "greedy_prompt_ids": [int(i) for i in greedy_prompt_ids],
        "greedy_ids": greedy_ids,
        "greedy_min_margin": min(margins),
        "hf_dequantized": hf,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")
    greedy_text = llm.detokenize(greedy_ids).decode("utf-8", errors="replace")
    print(f"{args.out}: ppl {ppl:.3f} over {N_INPUT - 1} tokens, add_bos {add_bos}, "
          f"greedy {GREEDY_PROMPT!r} -> {greedy_text!r} (min margin {min(margins):.3f}); HF on the dequantized "
          f"weights: {json.dumps(hf)}")


if __name__ == "__main__":
    main()
