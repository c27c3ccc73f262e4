#!/usr/bin/env python3
"""PyTorch + PEFT reference for memllm's LoRA trainer (tests/test_train_reference.c).

  python3 tools/make_train_reference.py [--memllm build/coordinator/memllm]   # ~15 s

For tiny-mistral (untied head, sliding window 16, GQA) and tiny-llama (tied
embeddings), writes tests/fixtures/train/<model>/:

  examples.jsonl   3 examples in `memllm train`'s format, as token ids
                   ("segments": [{"tokens": [...], "loss": bool}]), of 90, 100
                   and 23 tokens (tiny-mistral: longer than its window).
  init/            a PEFT LoRA adapter (r 4, alpha 8, q,k,v,o,gate,up,down and
                   lm_head; tiny-llama adds rank_pattern {"v_proj": 2} and
                   alpha_pattern {"o_proj": 16}) with trainable_token_indices
                   [509, 510, 511] (MemLLM's "({", "})", "-->"). lora_B and the
                   token rows are drawn random (PEFT starts B at 0, which would
                   leave A's gradient 0 and the check weak).
  reference.safetensors
                   "loss" [1, 1] and "grad.<tensor>" for every trainable tensor
                   (the adapter's names), for one global batch of the 3
                   examples, dropout off; then "step3.<tensor>", the tensors
                   after 3 AdamW steps on that batch.
                   "init_logits": PEFT's logits [n, vocab] of example 0 with
                   init/, and "trained_logits" those with trained/.
  trained/         the adapter `memllm train` writes from init/ in the 3 steps
                   above (run by this script: --memllm BIN), which HF PEFT
                   loads for "trained_logits": memllm's inference must give
                   those logits with it.
  reference.json   the hyper-parameters and, per step, the loss and the
                   gradient norm before clipping.

Conventions, which memllm's trainer shares: token t is a target when its
segment has "loss": true (t >= 1), predicted from tokens 0..t-1; the loss is
the sum of the targets' cross-entropies over all examples of the batch divided
by the number of targets in the batch (HF Trainer's mean with
num_items_in_batch); each example runs alone (no padding). The 3 steps:
torch.optim.AdamW(lr 1e-2, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01) on
every trainable tensor, transformers.get_linear_schedule_with_warmup(opt, 1, 4)
and clip_grad_norm_(1.0) before each step.

What PEFT 0.21 does, which memllm implements (checked by asserts below):
  - trainable_token_indices keeps the full new rows (not a difference) in
    base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta
    [n, hidden]; the embedding's rows of those ids are replaced by them.
  - tied embeddings: the LM head wraps the same token layer, so its rows for
    those ids are the same tensor; LoRA on lm_head sits on top of it.
    Untied: the head keeps its own rows.
  - LoRA: y = W x + (alpha / r) * B A dropout(x), patterns by module-name
    suffix.
"""
import argparse
import json
import os
import shutil
import subprocess

import peft
import safetensors.torch
import torch
import transformers
from peft import LoraConfig, get_peft_model

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
OUT = os.path.join(ROOT, "tests", "fixtures", "train")
TOKENS = [509, 510, 511]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]
HYPER = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, warmup=1,
             schedule_steps=4, steps=3, max_grad_norm=1.0)

# Each example: segments of (text, loss); MemLLM's tokens appear in them.
TEXTS = [
    [("Dancing on Coral is a novel by", False),
     ("({MEM_READ(Dancing on Coral>>author>>)-->", True), ("Glenda Adams", False), ("})", False),
     (" Glenda Adams. It was published in 1987 by Viking.", True)],
    [("Willi Schneider was born on 13 March 1963 in Germany. He is a skeleton racer who "
      "competed from the late 1980s.({MEM_WRITE-->", False),
     ("Willi Schneider>>date of birth>>13 March 1963;Willi Schneider>>country of "
      "citizenship>>Germany})", True)],
    [("The river flows through France.({MEM_WRITE-->", False), ("})", True)],
]
LENGTHS = [90, 100, 23]


def segments(tok, example, length, bos):
    """Token segments of an example, its prompt cut or its end padded to `length`."""
    segs = []
    for text, loss in example:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        segs.append([ids, loss])
    if bos is not None:
        segs.insert(0, [[bos], False])
    total = sum(len(s[0]) for s in segs)
    filler = tok(" and the story goes on and on", add_special_tokens=False)["input_ids"]
    while total < length:
        segs[-1][0].append(filler[total % len(filler)])
        total += 1
    # too long: cut the start of the prompt (the first segment without loss)
    first = 1 if bos is not None else 0
    while total > length:
        prompt = segs[first][0]
        assert not segs[first][1] and len(prompt) > total - length, "shorten the text instead"
        del prompt[: total - length]
        total = sum(len(s[0]) for s in segs)
    assert sum(len(s[0]) for s in segs) == length
    assert any(s[1] for s in segs)
    return segs


def flat(segs):
    ids, target = [], []
    for s, loss in segs:
        ids += s
        target += [1 if loss else 0] * len(s)
    target[0] = 0
    return ids, target


def saved_name(param_name):
    return param_name.replace(".default", "")


def memllm_train(memllm, mdir, dest):
    """The 3 steps of test_train_reference.c, by memllm itself."""
    out = os.path.join(dest, "trained")
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([memllm, "train", "--model", mdir, "--init", os.path.join(dest, "init"),
                    "--data", os.path.join(dest, "examples.jsonl"), "--out", out, "--batch", "3",
                    "--epochs", "4", "--max-steps", "3", "--lr", "1e-2", "--warmup", "1",
                    "--weight-decay", "0.01", "--max-grad-norm", "1", "--dropout", "0",
                    "--quiet"], check=True)
    for name in os.listdir(out):
        if name not in ("adapter_config.json", "adapter_model.safetensors"):
            path = os.path.join(out, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--memllm", default=os.path.join(ROOT, "build", "coordinator", "memllm"))
    args = ap.parse_args()
    torch.manual_seed(0)
    os.makedirs(OUT, exist_ok=True)
    for seed, name in enumerate(["tiny-mistral", "tiny-llama"]):
        torch.manual_seed(seed)  # PEFT draws lora_A from the global generator
        mdir = os.path.join(MODELS, name)
        tok = transformers.AutoTokenizer.from_pretrained(mdir)
        model = transformers.AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32)
        model.eval()
        extra = {}
        if name == "tiny-llama":
            extra = dict(rank_pattern={"v_proj": 2}, alpha_pattern={"o_proj": 16})
        cfg = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS,
                         trainable_token_indices=TOKENS, **extra)
        pm = get_peft_model(model, cfg)
        gen = torch.Generator().manual_seed(1 if name == "tiny-mistral" else 2)
        with torch.no_grad():
            for n, p in pm.named_parameters():
                if "lora_B" in n or "trainable_tokens_delta" in n:
                    p.add_(torch.randn(p.shape, generator=gen) * 0.02)
        params = [(n, p) for n, p in pm.named_parameters() if p.requires_grad]
        head = pm.base_model.model.lm_head
        tied = model.config.tie_word_embeddings
        assert tied == hasattr(head.base_layer, "token_adapter"), "PEFT's tied token rows"

        dest = os.path.join(OUT, name)
        os.makedirs(dest, exist_ok=True)
        pm.save_pretrained(os.path.join(dest, "init"))
        # PEFT writes target_modules from a set, in hash order: sorted, a
        # rerun writes the same bytes
        cfg_path = os.path.join(dest, "init", "adapter_config.json")
        with open(cfg_path) as f:
            saved = json.load(f)
        saved["target_modules"] = sorted(saved["target_modules"])
        with open(cfg_path, "w") as f:
            json.dump(saved, f, indent=2, sort_keys=True)
            f.write("\n")
        st = safetensors.torch.load_file(os.path.join(dest, "init", "adapter_model.safetensors"))
        assert set(st) == {saved_name(n) for n, _ in params}, sorted(st)

        bos = tok.bos_token_id if name == "tiny-mistral" else None
        examples = [segments(tok, ex, n, bos) for ex, n in zip(TEXTS, LENGTHS)]
        with open(os.path.join(dest, "examples.jsonl"), "w") as f:
            for i, segs in enumerate(examples):
                line = {"kind": "test", "doc": i, "title": name,
                        "segments": [{"tokens": s, "loss": loss} for s, loss in segs]}
                f.write(json.dumps(line) + "\n")
        batch = [flat(s) for s in examples]
        n_targets = sum(sum(t) for _, t in batch)

        def loss_and_grads():
            for _, p in params:
                p.grad = None
            total = 0.0
            for ids, target in batch:
                x = torch.tensor([ids])
                logits = pm(input_ids=x).logits[0, :-1]
                want = torch.tensor(ids[1:])
                mask = torch.tensor(target[1:], dtype=torch.bool)
                ce = torch.nn.functional.cross_entropy(logits[mask], want[mask], reduction="sum")
                (ce / n_targets).backward()
                total += ce.item()
            return total / n_targets

        out = {}
        with torch.no_grad():
            out["init_logits"] = pm(input_ids=torch.tensor([batch[0][0]])).logits[0].clone()
        loss = loss_and_grads()
        out["loss"] = torch.tensor([[loss]])
        for n, p in params:
            out["grad." + saved_name(n)] = p.grad.detach().clone().reshape(p.shape[0], -1)

        opt = torch.optim.AdamW([p for _, p in params], lr=HYPER["lr"],
                                betas=(HYPER["beta1"], HYPER["beta2"]), eps=HYPER["eps"],
                                weight_decay=HYPER["weight_decay"])
        sched = transformers.get_linear_schedule_with_warmup(opt, HYPER["warmup"],
                                                             HYPER["schedule_steps"])
        losses, norms = [], []
        for _ in range(HYPER["steps"]):
            losses.append(loss_and_grads())
            norms.append(float(torch.nn.utils.clip_grad_norm_([p for _, p in params],
                                                              HYPER["max_grad_norm"])))
            opt.step()
            sched.step()
        for n, p in params:
            out["step3." + saved_name(n)] = p.detach().clone().reshape(p.shape[0], -1)
        trained = memllm_train(args.memllm, mdir, dest)
        base = transformers.AutoModelForCausalLM.from_pretrained(mdir, dtype=torch.float32)
        peer = peft.PeftModel.from_pretrained(base, trained)
        peer.eval()
        with torch.no_grad():
            out["trained_logits"] = peer(input_ids=torch.tensor([batch[0][0]])).logits[0].clone()
        safetensors.torch.save_file({k: v.contiguous() for k, v in out.items()},
                                    os.path.join(dest, "reference.safetensors"))
        ref = dict(HYPER, model=name, tied=tied, targets=n_targets, loss=loss, step_losses=losses,
                   step_grad_norms=norms, tokens=TOKENS, lengths=LENGTHS,
                   versions=dict(torch=torch.__version__, transformers=transformers.__version__,
                                 peft=peft.__version__))
        with open(os.path.join(dest, "reference.json"), "w") as f:
            json.dump(ref, f, indent=1)
            f.write("\n")
        print(f"{name}: loss {loss:.6f}, steps {['%.5f' % v for v in losses]}, "
              f"grad norms {['%.4f' % v for v in norms]}, {len(params)} tensors")


if __name__ == "__main__":
    main()
