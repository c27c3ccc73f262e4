#!/usr/bin/env python3
"""PyTorch + PEFT reference for memllm's LoRA trainer (tests/trainer/test_train_reference.c).

    python3 tools/make_train_reference.py [--memllm BIN | --no-memllm]   # ~10 s on 2 cores

For tiny-mistral (untied head, sliding window 16, GQA) and tiny-llama (tied
embeddings, rank and alpha patterns) of tests/fixtures/models/, writes
tests/fixtures/train/<model>/:

  examples.json    the 3 training examples (23, 64 and 40 tokens, all longer
                   than tiny-mistral's window of 16) as "ids" and a 0/1 "mask":
                   position t's loss predicts ids[t+1] from ids[0..t] and
                   counts when mask[t+1] is 1 (mask[0] is always 0).
  examples.jsonl   the same examples in `memllm train --data`'s format
                   ({"segments": [{"tokens": [...], "loss": bool}]}).
  init/            a PEFT LoRA adapter: r 4, lora_alpha 8, dropout 0, on
                   q,k,v,o,gate,up,down_proj and lm_head, trainable_token_indices
                   [509, 510, 511] (MemLLM's "({", "})", "-->"); tiny-llama adds
                   rank_pattern {"v_proj": 2} and alpha_pattern {"o_proj": 16}.
                   lora_A, lora_B and the token rows are drawn here (PEFT's B = 0
                   would make A's gradient 0; its rows would equal the base's).
  grads.safetensors
                   "loss" [1] and, under the adapter's tensor names, the
                   gradient of every trainable tensor for one batch of the 3
                   examples: loss = (sum of the target tokens' cross-entropies
                   over the batch) / (number of target tokens in the batch), each
                   example run alone (no padding), f32, dropout off.
  steps/           the adapter after 3 AdamW steps on that batch (hyper-parameters
                   in reference.json).
  trained/         the adapter `memllm train --init init/` writes for those 3
                   steps (run here: --memllm BIN), for the inference check.
  logits.safetensors
                   "init" and "trained": HF PEFT's logits [23, 512] of example 0
                   (which holds all three MemLLM tokens)
                   with init/ and with trained/, each loaded back by
                   PeftModel.from_pretrained.
  reference.json   the hyper-parameters, the loss, and at each step the loss, the
                   learning rate and the gradient norm before clipping; versions.

It also asserts what PEFT 0.21 does (the facts memllm's trainer copies, listed
in tools/README.md): the trainable token rows, their tie to a tied LM head,
LoRA's dropout placement and scale with patterns, gradient clipping, the
schedule and AdamW's decoupled weight decay and bias correction. Seeded and
single-threaded: a rerun writes the same bytes.
"""
import argparse
import json
import math
import shutil
import subprocess
import warnings
from pathlib import Path

import peft
import safetensors.torch
import torch
import transformers
from peft import LoraConfig, get_peft_model
from peft.utils.other import get_pattern_key
from transformers import AutoModelForCausalLM, AutoTokenizer

from check_peft_adapter import peft_logits

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "fixtures" / "models"
OUT = ROOT / "tests" / "fixtures" / "train"
TOKENS = [509, 510, 511]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "lm_head"]
RANK, ALPHA = 4, 8
PATTERNS = {"tiny-mistral": {}, "tiny-llama": dict(rank_pattern={"v_proj": 2}, alpha_pattern={"o_proj": 16})}
HYPER = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, warmup_steps=1, total_steps=4,
             steps=3, max_grad_norm=1.0, dropout=0.0)
ROWS = "base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta"
# lora_B and the token rows' perturbation: small, like a trained adapter's.
INIT_STD = 0.02

# Each example: (text, loss) segments in MemLLM's conventions (DESIGN.md 7):
# a read (MR) trains the call and the text after it, not the text before nor
# the answer the runtime inserts; a write (MW) trains only the answer.
TEXTS = [
    [("The river flows through France.({MEM_WRITE-->", False), ("})", True)],
    [("Dancing on Coral is a novel by", False), ("({MEM_READ(Dancing on Coral>>author>>)-->", True),
     ("Glenda Adams", False), ("})", False), (" Glenda Adams.", True)],
    [("Willi Schneider is a German skeleton racer.({MEM_WRITE-->", False),
     ("Willi Schneider>>sport>>skeleton})", True)],
]
LENGTHS = [23, 64, 40]
FILLER = " and the story goes on and on"


# Examples ----------------------------------------------------------------------


def segments(tok, example, length, bos):
    """Token segments [ids, loss] of an example brought to `length` tokens:
    the start of its first loss-free segment cut, or filler appended to its
    last segment, so the spans of MemLLM's tokens stay whole."""
    segs = [[tok(text, add_special_tokens=False)["input_ids"], loss] for text, loss in example]
    first = 0
    if bos is not None:
        segs.insert(0, [[bos], False])
        first = 1
    total = sum(len(s[0]) for s in segs)
    filler = tok(FILLER, add_special_tokens=False)["input_ids"]
    for i in range(length - total):
        segs[-1][0].append(filler[i % len(filler)])
    if total > length:
        assert not segs[first][1] and len(segs[first][0]) > total - length, "shorten the example's text"
        del segs[first][0][:total - length]
    assert sum(len(s[0]) for s in segs) == length
    return segs


def flatten(segs):
    """ids and the 0/1 target mask (token 0 is never a target)."""
    ids, mask = [], []
    for seg_ids, loss in segs:
        ids += seg_ids
        mask += [int(loss)] * len(seg_ids)
    mask[0] = 0
    assert any(mask), "an example without loss tokens"
    return ids, mask


def write_examples(dest, name, tok, examples):
    batch = [flatten(s) for s in examples]
    head = {
        "convention": "position t's loss predicts ids[t+1] from ids[0..t]; it counts when mask[t+1] is 1",
        "model": name,
        "n_loss_tokens": sum(sum(m) for _, m in batch),
    }
    # one example a line, readable beside its mask
    lines = [json.dumps({"text": tok.decode(ids), "ids": ids, "mask": mask}, ensure_ascii=False)
             for ids, mask in batch]
    text = json.dumps(head, indent=1)[:-2] + ',\n "examples": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"
    assert json.loads(text)["examples"][0]["ids"] == batch[0][0]
    (dest / "examples.json").write_text(text)
    with open(dest / "examples.jsonl", "w") as f:
        for i, segs in enumerate(examples):
            line = {"kind": "test", "doc": i, "title": name,
                    "segments": [{"tokens": ids, "loss": loss} for ids, loss in segs]}
            f.write(json.dumps(line) + "\n")
    return batch


# The adapter -----------------------------------------------------------------


def make_peft(model_dir, name, seed, dropout=0.0):
    """PEFT's model with init/'s configuration and drawn weights: A uniform in
    +-1/sqrt(in) (PEFT's own bound), B ~ N(0, INIT_STD^2), token rows the
    base rows plus N(0, INIT_STD^2)."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=dropout, target_modules=TARGETS, bias="none",
                        trainable_token_indices=TOKENS, task_type="CAUSAL_LM", **PATTERNS[name])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pm = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in sorted(pm.named_parameters()):
            if ".lora_A." in n:
                p.copy_((torch.rand(p.shape, generator=gen) * 2 - 1) / p.shape[1] ** 0.5)
            elif ".lora_B." in n:
                p.copy_(torch.randn(p.shape, generator=gen) * INIT_STD)
            elif "trainable_tokens_delta" in n:
                p.add_(torch.randn(p.shape, generator=gen) * INIT_STD)
    return pm, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def saved_name(param_name):
    return param_name.replace(".default", "")


def save_adapter(pm, out):
    """PEFT's save_pretrained, made reproducible: target_modules (a set in
    PEFT) sorted, no absolute base path, no model-card template."""
    shutil.rmtree(out, ignore_errors=True)
    pm.save_pretrained(out)
    (out / "README.md").unlink()
    cfg = json.loads((out / "adapter_config.json").read_text())
    cfg["target_modules"] = sorted(cfg["target_modules"])
    cfg["base_model_name_or_path"] = None
    (out / "adapter_config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    return safetensors.torch.load_file(out / "adapter_model.safetensors")


# PEFT's behaviour, checked -----------------------------------------------------


def check_tied_configs(model_dir, tied):
    """Which configurations PEFT takes for a tied model with LoRA on lm_head
    and trainable tokens: ensure_weight_tying=True (which would tie a LoRA
    on the embedding to the head's) raises a TypeError; the default (False)
    is accepted with a warning, and is what init/ uses."""
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=["lm_head"], trainable_token_indices=TOKENS,
                        ensure_weight_tying=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            get_peft_model(model, config)
        except TypeError as e:
            assert tied, f"ensure_weight_tying fails on an untied model: {e}"
            return f"TypeError: {e}"
    assert not tied, "PEFT now accepts ensure_weight_tying with trainable tokens on a tied model: revisit"
    return "accepted"


def check_rows_and_head(pm, model_cfg, ids):
    """Trainable tokens: one tensor, the full new rows (index_copy into the
    embedding, not added); a tied head shares that very tensor (its logits
    for those ids use the new rows, and the rows' gradient has a head part);
    an untied head keeps its rows. The head's logits are
    W' h + (alpha / r) B A h, h the final-normed hidden state."""
    embed_wrapper = pm.base_model.model.model.embed_tokens
    rows = embed_wrapper.token_adapter.trainable_tokens_delta["default"]
    base_embed = embed_wrapper.token_adapter.base_layer.weight
    index = torch.tensor(TOKENS)
    assert rows.shape == (len(TOKENS), model_cfg.hidden_size)
    with torch.no_grad():
        looked_up = pm.get_input_embeddings()(index)
    assert torch.equal(looked_up, rows), "embedding of a trainable token is not its stored row"
    assert not torch.allclose(rows, base_embed[index]), "token rows equal the base rows"

    head = pm.base_model.model.lm_head
    tied = bool(model_cfg.tie_word_embeddings)
    head_base = head.base_layer
    assert tied == hasattr(head_base, "token_adapter"), "a tied head must wrap the embedding's token layer"
    if tied:
        assert head_base.token_adapter.trainable_tokens_delta["default"] is rows, "tied head has its own rows"
        assert head_base.token_adapter.base_layer.weight is base_embed, "tied head and embedding differ"
        head_weight = base_embed.detach().index_copy(0, index, rows)
    else:
        head_weight = head_base.weight.detach()

    captured = {}
    hook = head.register_forward_pre_hook(lambda _m, args: captured.update(h=args[0]))
    out = pm(input_ids=torch.tensor([ids]))
    hook.remove()
    h = captured["h"][0]
    a, b = head.lora_A["default"].weight, head.lora_B["default"].weight
    scale = head.scaling["default"]
    want = h @ head_weight.T + scale * (h @ a.T) @ b.T
    diff = (out.logits[0] - want).abs().max().item()
    assert diff < 1e-4, f"head logits differ from W' h + s B A h by {diff}"

    # the rows' gradient: through the embedding and, when tied, through the head
    target = torch.tensor(ids[1:])
    loss = torch.nn.functional.cross_entropy(out.logits[0, :-1], target)
    full = torch.autograd.grad(loss, rows, retain_graph=True)[0]
    no_head = h @ (base_embed.detach().index_copy(0, index, rows.detach()) if tied else head_weight).T
    no_head = no_head + scale * (h @ a.T) @ b.T
    via_embedding = torch.autograd.grad(torch.nn.functional.cross_entropy(no_head[:-1], target), rows)[0]
    head_part = (full - via_embedding).abs().max().item()
    if tied:
        assert head_part > 1e-3 * full.abs().max().item(), "tied head adds nothing to the rows' gradient"
    else:
        assert head_part < 1e-6, "untied head changes the rows' gradient"
    print(f"  {ROWS} {list(rows.shape)}: the full new rows, looked up as they are; "
          f"head {'tied to them' if tied else 'keeps its own rows'} (head part of their gradient: "
          f"max {head_part:.3g}); head logits = W' h + {scale:g} B A h (max diff {diff:.2g})")
    return tied


def check_lora_scales(pm, name):
    """scale = alpha / r per module, r and alpha from rank_pattern and
    alpha_pattern: the first key K such that the module's name (without
    "base_model.model.") is K or ends in ".K" (PEFT matches K as a regular
    expression; the fixtures' keys are plain names)."""
    patterns = PATTERNS[name]
    n_patterned = 0
    for module_name, module in pm.base_model.model.named_modules():
        if not hasattr(module, "lora_A") or "default" not in module.lora_A:
            continue

        def pick(pattern):
            for key, value in pattern.items():
                if module_name == key or module_name.endswith("." + key):
                    assert get_pattern_key(pattern.keys(), module_name) == key
                    return value
            return None

        r = pick(patterns.get("rank_pattern", {})) or RANK
        alpha = pick(patterns.get("alpha_pattern", {})) or ALPHA
        n_patterned += (r, alpha) != (RANK, ALPHA)
        assert module.lora_A["default"].weight.shape[0] == r, module_name
        assert module.scaling["default"] == alpha / r, (module_name, module.scaling["default"], alpha / r)
    assert (n_patterned > 0) == bool(patterns), f"{name}: {n_patterned} modules use a pattern"
    print(f"  scale = alpha / r per module; {n_patterned} modules take r or alpha from {patterns or 'no pattern'}")


def check_dropout_placement(model_dir, name):
    """y = W x + scale * B A dropout(x): dropout on LoRA's input only (the
    base path sees x), inverted (kept inputs scaled by 1/(1-p)), a fresh
    mask per module call."""
    pm, _ = make_peft(model_dir, name, seed=7, dropout=0.25)
    pm.train()
    module = pm.base_model.model.model.layers[0].self_attn.q_proj
    x = torch.randn(5, module.in_features, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        torch.manual_seed(11)
        got = module(x)
        torch.manual_seed(11)
        dropped = torch.nn.functional.dropout(x, 0.25, training=True)
        a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
        want = x @ module.base_layer.weight.T + module.scaling["default"] * (dropped @ a.T) @ b.T
        no_dropout = x @ module.base_layer.weight.T + module.scaling["default"] * (x @ a.T) @ b.T
    assert torch.allclose(got, want, atol=1e-6), "LoRA dropout is not on A's input alone"
    assert not torch.allclose(got, no_dropout, atol=1e-4), "dropout had no effect"


def check_adamw(before, grads, lrs, after):
    """torch's AdamW, replayed in float64 from the clipped gradients it was
    given: at step t (1-based), p -= lr_t * wd * p (decoupled decay, before
    and independent of the moments); m = b1 m + (1-b1) g; v = b2 v +
    (1-b2) g^2; p -= lr_t * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)."""
    b1, b2, eps, wd = HYPER["beta1"], HYPER["beta2"], HYPER["eps"], HYPER["weight_decay"]
    for name, p0 in before.items():
        p = p0.double()
        m = torch.zeros_like(p)
        v = torch.zeros_like(p)
        for t, (g, lr) in enumerate(zip(grads[name], lrs), start=1):
            g = g.double()
            p = p - lr * wd * p
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            p = p - lr * (m / (1 - b1 ** t)) / ((v / (1 - b2 ** t)).sqrt() + eps)
        diff = (p - after[name].double()).abs().max().item()
        assert diff <= 1e-6 * max(p.abs().max().item(), 1e-3), f"AdamW replay of {name} off by {diff}"


def schedule(step):
    """get_linear_schedule_with_warmup's learning rate at 0-based step."""
    w, n = HYPER["warmup_steps"], HYPER["total_steps"]
    factor = step / w if step < w else max(0.0, (n - step) / (n - w))
    return HYPER["lr"] * factor


# Training ----------------------------------------------------------------------


def loss_and_grads(pm, params, batch):
    """The batch's loss; grads of each example (alone, no padding) summed
    into .grad, each token's cross-entropy divided by the batch's targets."""
    n_targets = sum(sum(m) for _, m in batch)
    for p in params.values():
        p.grad = None
    total = 0.0
    for ids, mask in batch:
        logits = pm(input_ids=torch.tensor([ids])).logits[0, :-1]
        keep = torch.tensor(mask[1:], dtype=torch.bool)
        ce = torch.nn.functional.cross_entropy(logits[keep], torch.tensor(ids[1:])[keep], reduction="sum")
        (ce / n_targets).backward()
        total += ce.item()
    return total / n_targets


def train_steps(pm, params, batch):
    """HYPER's AdamW steps on the batch; per step the loss, the learning rate
    and the gradient norm before clipping."""
    opt = torch.optim.AdamW(list(params.values()), lr=HYPER["lr"], betas=(HYPER["beta1"], HYPER["beta2"]),
                            eps=HYPER["eps"], weight_decay=HYPER["weight_decay"])
    sched = transformers.get_linear_schedule_with_warmup(opt, HYPER["warmup_steps"], HYPER["total_steps"])
    before = {n: p.detach().clone() for n, p in params.items()}
    clipped = {n: [] for n in params}
    log = []
    for step in range(HYPER["steps"]):
        loss = loss_and_grads(pm, params, batch)
        raw = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in params.values()))
        norm = float(torch.nn.utils.clip_grad_norm_(list(params.values()), HYPER["max_grad_norm"]))
        assert abs(norm - raw) <= 1e-5 * raw, "clip_grad_norm_ reports another norm"
        # clipping: g *= min(1, max_norm / (norm + 1e-6))
        coef = min(1.0, HYPER["max_grad_norm"] / (norm + 1e-6))
        clipped_norm = math.sqrt(sum(float((p.grad.double() ** 2).sum()) for p in params.values()))
        assert abs(clipped_norm - coef * raw) <= 1e-5 * raw, "clipping is not g * max_norm / (norm + 1e-6)"
        lr = opt.param_groups[0]["lr"]
        assert abs(lr - schedule(step)) < 1e-12, f"step {step}: lr {lr}, expected {schedule(step)}"
        for n, p in params.items():
            clipped[n].append(p.grad.detach().clone())
        opt.step()
        sched.step()
        log.append(dict(loss=loss, lr=lr, grad_norm=norm))
    check_adamw(before, clipped, [s["lr"] for s in log], {n: p.detach() for n, p in params.items()})
    return log


def memllm_train(memllm, model_dir, dest):
    """trained/: `memllm train` from init/ for the same 3 steps, as
    test_train_reference.c runs it."""
    out = dest / "trained"
    shutil.rmtree(out, ignore_errors=True)
    subprocess.run([str(memllm), "train", "--model", str(model_dir), "--init", str(dest / "init"), "--data",
                    str(dest / "examples.jsonl"), "--out", str(out), "--batch", "3", "--epochs", "4",
                    "--max-steps", str(HYPER["steps"]), "--lr", str(HYPER["lr"]), "--warmup",
                    str(HYPER["warmup_steps"]), "--weight-decay", str(HYPER["weight_decay"]), "--max-grad-norm",
                    str(HYPER["max_grad_norm"]), "--dropout", "0", "--quiet"], check=True)
    for path in out.iterdir():
        if path.name not in ("adapter_config.json", "adapter_model.safetensors"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return out


def build(name, seed, memllm):
    model_dir = MODELS / name
    dest = OUT / name
    dest.mkdir(parents=True, exist_ok=True)
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert tok.convert_ids_to_tokens(TOKENS) == ["({", "})", "-->"], tok.convert_ids_to_tokens(TOKENS)
    bos = tok.bos_token_id if tok("x")["input_ids"][0] == tok.bos_token_id else None
    examples = [segments(tok, ex, n, bos) for ex, n in zip(TEXTS, LENGTHS)]
    batch = write_examples(dest, name, tok, examples)

    pm, peft_warnings = make_peft(model_dir, name, seed)
    pm.eval()  # dropout is 0 anyway; eval also fixes any other train-only path
    model_cfg = pm.base_model.model.config
    print(name)
    tied = check_rows_and_head(pm, model_cfg, batch[0][0])
    tie_warning = [w for w in peft_warnings if "tie_word_embeddings" in w]
    assert bool(tie_warning) == tied, peft_warnings
    ensure_tying = check_tied_configs(model_dir, tied)
    if tied:
        print(f"  LoRA on the tied lm_head: accepted with a warning; ensure_weight_tying=True: {ensure_tying}")
    check_lora_scales(pm, name)
    check_dropout_placement(model_dir, name)

    params = {saved_name(n): p for n, p in pm.named_parameters() if p.requires_grad}
    init = save_adapter(pm, dest / "init")
    assert set(init) == set(params), sorted(set(init) ^ set(params))
    assert all(torch.equal(init[n], p.detach()) for n, p in params.items())
    assert init[ROWS].shape == (len(TOKENS), model_cfg.hidden_size)
    init_logits = torch.from_numpy(peft_logits(model_dir, dest / "init", batch[0][0]))
    with torch.no_grad():
        in_memory = pm(input_ids=torch.tensor([batch[0][0]])).logits[0]
    assert torch.allclose(init_logits, in_memory, atol=1e-5), "init/ does not load back to the same model"

    loss = loss_and_grads(pm, params, batch)
    grads = {"loss": torch.tensor([loss], dtype=torch.float32)}
    grads.update({n: p.grad.detach().clone().contiguous() for n, p in params.items()})
    zero = [n for n, g in grads.items() if n != "loss" and not g.abs().max() > 0]
    assert not zero, f"zero gradients: {zero}"
    safetensors.torch.save_file(grads, dest / "grads.safetensors")

    log = train_steps(pm, params, batch)
    assert log[0]["loss"] == loss
    steps = save_adapter(pm, dest / "steps")
    assert all(torch.equal(steps[n], p.detach()) for n, p in params.items())

    logits = {"init": init_logits.contiguous()}
    if memllm is not None:
        trained = memllm_train(memllm, model_dir, dest)
        logits["trained"] = torch.from_numpy(peft_logits(model_dir, trained, batch[0][0])).contiguous()
    safetensors.torch.save_file(logits, dest / "logits.safetensors")

    reference = dict(
        model=name, tied_embeddings=tied, hyper=HYPER, rank=RANK, alpha=ALPHA, targets=TARGETS,
        trainable_token_indices=TOKENS, **PATTERNS[name], lengths=LENGTHS,
        n_loss_tokens=sum(sum(m) for _, m in batch), loss=loss, steps=log,
        peft_tied_lm_head_lora_warning=tie_warning[0] if tie_warning else None,
        peft_ensure_weight_tying=ensure_tying,
        versions=dict(torch=torch.__version__, transformers=transformers.__version__, peft=peft.__version__))
    (dest / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    print("  dropout on LoRA's input only; clipping, schedule and AdamW as replayed in float64")
    print(f"  loss {loss:.6f}; steps: " +
          ", ".join(f"loss {s['loss']:.5f} lr {s['lr']:.4g} |g| {s['grad_norm']:.4f}" for s in log) +
          f"; {len(params)} trainable tensors")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--memllm", type=Path, default=ROOT / "build" / "coordinator" / "memllm",
                    help="memllm binary that writes trained/ (default: build/coordinator/memllm)")
    ap.add_argument("--no-memllm", action="store_true", help="leave trained/ and its logits out")
    args = ap.parse_args()
    if not args.no_memllm and not args.memllm.exists():
        ap.error(f"{args.memllm} does not exist: build memllm, pass --memllm BIN, or --no-memllm")
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    for seed, name in enumerate(["tiny-mistral", "tiny-llama"]):
        build(name, 1 + seed, None if args.no_memllm else args.memllm)


if __name__ == "__main__":
    main()
