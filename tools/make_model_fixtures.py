#!/usr/bin/env python3
"""Makes the tiny random-weight checkpoints under tests/fixtures/models/ and
the reference outputs that memllm's model code is checked against.

    python3 tools/make_model_fixtures.py [--out DIR] [--data DIR]

Each fixture is a HF checkpoint folder (config.json, safetensors,
tokenizer.json) with a PEFT LoRA adapter in adapter/ and a reference.json:

    {"prompt_ids": [64 ids], "n_positions": 64, "vocab_size": V,
     "logits": "logits.f32",                 # f32 LE, [n_positions][V]
     "greedy_prompt_ids": [16 ids], "greedy_ids": [32 new ids],
     "adapter": {"logits": "logits_lora.f32", "greedy_ids": [32 ids]},
     ...}                                    # extra keys: see write_reference

The references come from HF transformers (eager attention, float32) and PEFT,
and are cross-checked here against a second, plain float64 forward pass
written from the architecture's equations (reference_forward), so a fixture
is only written when two independent implementations agree. Everything is
seeded; a rerun writes the same bytes.
"""

import argparse
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          PreTrainedTokenizerFast)

ROOT = Path(__file__).resolve().parent.parent
N_POSITIONS = 64
GREEDY_PROMPT = 16
GREEDY_NEW = 32
# The MemLLM API tokens (DESIGN.md section 2), added to both tokenizers so
# the fixtures also exercise added-token matching.
MEMORY_TOKENS = ["({", "})", "-->"]
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Two implementations computing in float32 vs float64 over 2 layers agree far
# closer than this; a real bug (wrong rope pairing, mask off by one) is O(1).
AGREE_TOL = 2e-4
# A greedy step whose top two logits are closer than this could flip under a
# different (still correct) summation order, so the fixture would be flaky.
MIN_GREEDY_MARGIN = 1e-2


def redocred_texts(data_dir):
    """Each Re-DocRED dev document as one string: its tokenised sentences
    joined by spaces, in file order."""
    with open(data_dir / "redocred" / "dev_revised.json", encoding="utf-8") as f:
        docs = json.load(f)
    return [" ".join(" ".join(sent) for sent in doc["sents"]) for doc in docs]


# Tokenizers ------------------------------------------------------------------


def train_sentencepiece_bpe(texts, vocab_size):
    """A Llama/Mistral-style tokenizer: BPE over "▁"-prefixed words with byte
    fallback, laid out as Mistral-7B-v0.1's tokenizer.json: <unk> <s> </s>,
    then the 256 byte tokens <0x00>..<0xFF>, then the learned pieces."""
    specials = ["<unk>", "<s>", "</s>"]
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    n_learned = vocab_size - len(specials) - len(byte_tokens) - len(MEMORY_TOKENS)

    # Train with Metaspace splitting so no piece spans a word boundary, as
    # SentencePiece does; rare characters stay out of the alphabet and are
    # left to byte fallback.
    trainer_tok = Tokenizer(models.BPE())
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    trainer = trainers.BpeTrainer(vocab_size=n_learned, limit_alphabet=80, show_progress=False)
    trainer_tok.train_from_iterator(texts, trainer=trainer)
    learned = json.loads(trainer_tok.to_str())["model"]
    pieces = sorted(learned["vocab"], key=learned["vocab"].get)
    assert len(pieces) == n_learned, f"trainer made {len(pieces)} pieces, wanted {n_learned}"

    vocab = {tok: i for i, tok in enumerate(specials + byte_tokens + pieces)}
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([
        decoders.Replace("▁", " "),
        decoders.ByteFallback(),
        decoders.Fuse(),
        decoders.Strip(content=" ", left=1, right=0),
    ])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in MEMORY_TOKENS])
    assert tok.get_vocab_size() == vocab_size
    return tok, dict(bos_token="<s>", eos_token="</s>", unk_token="<unk>")


def train_byte_level_bpe(texts, vocab_size):
    """A GPT-2-style byte-level BPE (the SmolLM2 family's kind): the 256 byte
    symbols, then merges; no BOS added on encode, as GPT-2 and SmolLM2."""
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(MEMORY_TOKENS), special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in MEMORY_TOKENS])
    assert tok.get_vocab_size() == vocab_size, tok.get_vocab_size()
    return tok, dict(bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")


def find_prompt(tok, texts, n_tokens):
    """A Re-DocRED text whose encoding is exactly n_tokens long: the shortest
    word prefix of a document that reaches n_tokens, taking the first
    document where that lands exactly (so prompt_text <-> prompt_ids is a
    true tokenizer test case, not a truncation)."""
    for text in texts:
        words = text.split(" ")
        for n_words in range(1, len(words) + 1):
            prefix = " ".join(words[:n_words])
            ids = tok.encode(prefix).ids
            if len(ids) == n_tokens:
                return prefix, ids
            if len(ids) > n_tokens:
                break
    raise RuntimeError(f"no Re-DocRED prefix tokenises to exactly {n_tokens} tokens")


def tokenizer_cases(tok):
    """Texts that hit byte fallback / non-ASCII bytes, added tokens and
    whitespace runs, with the ids this tokenizer gives them."""
    texts = [
        "Wilfried \"Willi\" Schneider (born 13 March 1963 in Mediaș, Transylvania) is a German skeleton racer.",
        "Dancing on Coral is a novel by ({MEM_READ(Dancing on Coral>>author>>)-->Glenda Adams}) Glenda Adams.",
        "  two  spaces, a tab\tand\na newline; Zürich, São Paulo, 東京, emoji 🙂.",
    ]
    return [{"text": t, "ids": tok.encode(t).ids} for t in texts]


def save_tokenizer(tok, special_names, out_dir):
    PreTrainedTokenizerFast(tokenizer_object=tok, **special_names).save_pretrained(out_dir)


# Weights ---------------------------------------------------------------------


def randomize(model, seed, embed_std, logit_scale):
    """Weights with unit-scale activations: embeddings N(0, embed_std^2),
    linear layers N(0, 1/fan_in), norm gains in [0.5, 1.5] (so a norm applied
    with the wrong gain shows). HF's default init (std 0.02) would give
    near-uniform attention, hiding mask and rope bugs.

    Logits are then spread over tens of units (LM head, or for a tied model
    the final norm gain, scaled by logit_scale) so that greedy choices have
    clear margins. A tied model also wants a small embed_std: its logits are
    the residual stream's dot products with the embeddings, and a large input
    embedding in that stream makes every token predict itself forever."""
    gen = torch.Generator().manual_seed(seed)
    tied = model.config.tie_word_embeddings
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name.endswith("norm.weight"):
                scale = logit_scale if tied and name == "model.norm.weight" else 1.0
                p.copy_((0.5 + torch.rand(p.shape, generator=gen)) * scale)
            elif "embed_tokens" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * embed_std)
            else:
                scale = logit_scale if name == "lm_head.weight" else 1.0
                p.copy_(torch.randn(p.shape, generator=gen) * scale / p.shape[1] ** 0.5)


def add_lora(model, seed, rank_pattern=None, alpha_pattern=None):
    """A PEFT LoRA on every projection with both A and B random (PEFT's
    default B = 0 would make the adapter a no-op)."""
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=LORA_TARGETS, bias="none",
                        rank_pattern=rank_pattern or {}, alpha_pattern=alpha_pattern or {},
                        task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(peft_model.named_parameters()):
            if ".lora_A." in name:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
            elif ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3 / p.shape[1] ** 0.5)
    return peft_model


def load_hf(model_dir, adapter_dir=None):
    """The checkpoint as HF loads it, in float32 (bf16/f16 weights upcast)."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    if adapter_dir is not None:
        model = PeftModel.from_pretrained(model, adapter_dir)
        model.eval()
    return model


@torch.no_grad()
def hf_logits(model, ids):
    return model(torch.tensor([ids])).logits[0].float().numpy()


@torch.no_grad()
def hf_greedy(model, prompt_ids, n_new):
    """Greedy decoding by full recomputation at each step (no KV cache, no
    stop token), so the result is the argmax of the plain forward pass.
    Returns the new ids and the smallest top-1/top-2 logit gap seen."""
    ids = list(prompt_ids)
    min_margin = float("inf")
    for _ in range(n_new):
        last = model(torch.tensor([ids])).logits[0, -1].float()
        top2 = torch.topk(last, 2).values
        min_margin = min(min_margin, float(top2[0] - top2[1]))
        ids.append(int(torch.argmax(last)))
    return ids[len(prompt_ids):], min_margin


# Independent float64 forward -------------------------------------------------


def load_weights(model_dir):
    index = model_dir / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.exists() \
        else ["model.safetensors"]
    weights = {}
    for f in files:
        weights.update({k: v.double() for k, v in load_file(model_dir / f).items()})
    return weights


def merge_lora(weights, adapter_dir):
    """W + (alpha/r) B A for every adapted module; r from A's shape, alpha
    from alpha_pattern with PEFT's rule (first key K such that the module
    name is K or ends with ".K", K a regular expression)."""
    cfg = json.loads((adapter_dir / "adapter_config.json").read_text())
    lora = {k: v.double() for k, v in load_file(adapter_dir / "adapter_model.safetensors").items()}
    merged = dict(weights)
    for key, a in lora.items():
        if ".lora_A." not in key:
            continue
        module = key.split(".lora_A.")[0].removeprefix("base_model.model.")
        b = lora[key.replace(".lora_A.", ".lora_B.")]
        alpha = cfg["lora_alpha"]
        for pattern, value in cfg.get("alpha_pattern", {}).items():
            if re.match(rf"(.*\.)?({pattern})$", module):
                alpha = value
                break
        merged[module + ".weight"] = merged[module + ".weight"] + (alpha / a.shape[0]) * (b @ a)
    return merged


def reference_forward(w, cfg, ids):
    """Llama/Mistral decoder from its equations, float64: RMSNorm, RoPE with
    HF's half-split pairing (dim i rotates with i + head_dim/2), grouped-query
    attention with a causal mask, for Mistral cut to the last sliding_window
    keys (query i sees keys j with i - W < j <= i), SwiGLU MLP."""
    n_heads, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_heads
    eps = cfg["rms_norm_eps"]
    theta = cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"]
    window = cfg.get("sliding_window")
    n = len(ids)

    def rmsnorm(x, g):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * g

    pos = torch.arange(n, dtype=torch.float64)
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
    angles = torch.outer(pos, inv_freq)
    cos, sin = torch.cat([angles, angles], -1).cos(), torch.cat([angles, angles], -1).sin()

    def rope(x):  # [heads, n, head_dim]
        half = head_dim // 2
        rotated = torch.cat([-x[..., half:], x[..., :half]], -1)
        return x * cos + rotated * sin

    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    allowed = j <= i
    if window is not None:
        allowed &= j > i - window

    x = w["model.embed_tokens.weight"][torch.tensor(ids)]
    for layer in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rmsnorm(x, w[p + "input_layernorm.weight"])
        q = (h @ w[p + "self_attn.q_proj.weight"].T).view(n, n_heads, head_dim).transpose(0, 1)
        k = (h @ w[p + "self_attn.k_proj.weight"].T).view(n, n_kv, head_dim).transpose(0, 1)
        v = (h @ w[p + "self_attn.v_proj.weight"].T).view(n, n_kv, head_dim).transpose(0, 1)
        q, k = rope(q), rope(k)
        group = n_heads // n_kv  # query head hq reads KV head hq // group
        k, v = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)
        scores = (q @ k.transpose(1, 2)) / head_dim ** 0.5
        scores = scores.masked_fill(~allowed, float("-inf"))
        attn = torch.softmax(scores, -1) @ v
        x = x + attn.transpose(0, 1).reshape(n, n_heads * head_dim) @ w[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, w[p + "post_attention_layernorm.weight"])
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, w["model.norm.weight"])
    head = w.get("lm_head.weight", w["model.embed_tokens.weight"])
    return (x @ head.T).numpy()


def check_agree(what, hf, ref):
    diff = float(np.abs(hf - ref).max())
    scale = float(np.abs(ref).max())
    print(f"  {what}: HF float32 vs float64 reference: max |diff| {diff:.2e} (max |logit| {scale:.1f})")
    assert diff < AGREE_TOL * max(1.0, scale), f"{what}: HF and the float64 reference disagree by {diff}"


# Fixtures --------------------------------------------------------------------


def compute_reference(model_dir, prompt_ids):
    """Logits and greedy continuations without and with the adapter, each
    checked against the float64 reference."""
    cfg = json.loads((model_dir / "config.json").read_text())
    adapter_dir = model_dir / "adapter"
    weights = load_weights(model_dir)
    out = {}
    for label, adapter in (("base", None), ("lora", adapter_dir)):
        model = load_hf(model_dir, adapter)
        logits = hf_logits(model, prompt_ids)
        w = weights if adapter is None else merge_lora(weights, adapter)
        check_agree(f"{model_dir.name} {label} logits", logits, reference_forward(w, cfg, prompt_ids))
        greedy, margin = hf_greedy(model, prompt_ids[:GREEDY_PROMPT], GREEDY_NEW)
        full = prompt_ids[:GREEDY_PROMPT] + greedy
        ref_next = reference_forward(w, cfg, full[:-1])[GREEDY_PROMPT - 1:].argmax(-1)
        assert list(ref_next) == greedy, f"{model_dir.name} {label}: greedy ids differ from the float64 reference"
        assert margin > MIN_GREEDY_MARGIN, f"{model_dir.name} {label}: greedy margin {margin} too small"
        print(f"  {model_dir.name} {label} greedy: smallest top-2 margin {margin:.3f}")
        out[label] = (logits, greedy, margin)
    return out


def write_reference(model_dir, prompt_text, prompt_ids, ref, tok):
    base_logits, base_greedy, base_margin = ref["base"]
    lora_logits, lora_greedy, lora_margin = ref["lora"]
    assert base_logits.shape == (N_POSITIONS, tok.get_vocab_size())
    base_logits.astype("<f4").tofile(model_dir / "logits.f32")
    lora_logits.astype("<f4").tofile(model_dir / "logits_lora.f32")
    reference = {
        "prompt_ids": prompt_ids,
        "n_positions": N_POSITIONS,
        "vocab_size": tok.get_vocab_size(),
        "logits": "logits.f32",
        "greedy_prompt_ids": prompt_ids[:GREEDY_PROMPT],
        "greedy_ids": base_greedy,
        "adapter": {"logits": "logits_lora.f32", "greedy_ids": lora_greedy, "greedy_min_margin": lora_margin},
        # Extras, not needed to check logits: the text prompt_ids encode
        # (exactly, with the fixture's tokenizer), the smallest top-1/top-2
        # gap during greedy decoding (how much numeric slack a greedy
        # comparison has), and more tokenizer cases from HF tokenizers.
        "prompt_text": prompt_text,
        "greedy_min_margin": base_margin,
        "tokenizer_cases": tokenizer_cases(tok),
    }
    (model_dir / "reference.json").write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")


def build(out_root, name, model_cls, config, tok, special_names, texts, seed, embed_std, logit_scale,
          lora_patterns):
    """Makes <out_root>/<name>: the f32 checkpoint, tokenizer and adapter."""
    model_dir = out_root / name
    if model_dir.exists():
        shutil.rmtree(model_dir)
    torch.manual_seed(seed)
    model = model_cls(config)
    randomize(model, seed, embed_std, logit_scale)
    model.save_pretrained(model_dir)
    save_tokenizer(tok, special_names, model_dir)
    peft_model = add_lora(model, seed + 1, **lora_patterns)
    peft_model.save_pretrained(model_dir / "adapter")
    # PEFT keeps target_modules as a set, so its saved order follows Python's
    # string hashing and would change from run to run.
    adapter_config = model_dir / "adapter" / "adapter_config.json"
    cfg = json.loads(adapter_config.read_text())
    cfg["target_modules"] = sorted(cfg["target_modules"])
    adapter_config.write_text(json.dumps(cfg, indent=2) + "\n")
    prompt_text, prompt_ids = find_prompt(tok, texts, N_POSITIONS)
    return model_dir, prompt_text, prompt_ids


def copy_variant(src_dir, dst_dir, dtype=None, max_shard_size=None):
    """The same model saved again: weights rounded to dtype, or sharded."""
    if dst_dir.exists():
        shutil.rmtree(dst_dir)
    model = AutoModelForCausalLM.from_pretrained(src_dir, dtype=torch.float32)
    if dtype is not None:
        model = model.to(dtype)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(dst_dir, **kwargs)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(src_dir / f, dst_dir / f)
    shutil.copytree(src_dir / "adapter", dst_dir / "adapter")


def use_legacy_rope_theta(model_dir):
    """Rewrites config.json the way transformers 4.x saved it (rope_theta at
    top level, torch_dtype), which is what most published checkpoints carry;
    tiny-mistral keeps transformers 5's rope_parameters, so both spellings
    are covered."""
    path = model_dir / "config.json"
    cfg = json.loads(path.read_text())
    cfg["rope_theta"] = cfg.pop("rope_parameters")["rope_theta"]
    cfg["torch_dtype"] = cfg.pop("dtype")
    path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def sliding_window_matters(model_dir, prompt_ids):
    """The fixture must exercise the window: the same weights without it
    must give different logits past position sliding_window."""
    windowed = hf_logits(load_hf(model_dir), prompt_ids)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager",
                                                 sliding_window=None)
    model.eval()
    full = hf_logits(model, prompt_ids)
    window = json.loads((model_dir / "config.json").read_text())["sliding_window"]
    inside = float(np.abs(windowed[:window] - full[:window]).max())
    beyond = float(np.abs(windowed[window:] - full[window:]).max())
    print(f"  sliding window {window}: logits change by {inside:.2e} inside it, {beyond:.2f} beyond it")
    assert inside < 1e-5, "positions inside the window must not depend on it"
    assert beyond > 0.1, "the sliding window does not change the logits; the fixture would not test it"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "models")
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("MEMLLM_SHARED_DATA", ROOT.parent / "shared" / "data")))
    args = parser.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    texts = redocred_texts(args.data)

    print("tiny-mistral")
    tok, names = train_sentencepiece_bpe(texts, 512)
    config = MistralConfig(vocab_size=512, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                           num_attention_heads=8, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                           rope_theta=10000.0, rms_norm_eps=1e-5, sliding_window=16, tie_word_embeddings=False,
                           bos_token_id=1, eos_token_id=2)
    mistral_dir, text, ids = build(args.out, "tiny-mistral", MistralForCausalLM, config, tok, names, texts,
                                   seed=1004, embed_std=1.0, logit_scale=6.0,
                                   lora_patterns={})
    sliding_window_matters(mistral_dir, ids)
    ref = compute_reference(mistral_dir, ids)
    write_reference(mistral_dir, text, ids, ref, tok)

    print("tiny-mistral-sharded")
    sharded_dir = args.out / "tiny-mistral-sharded"
    copy_variant(mistral_dir, sharded_dir, max_shard_size="400KB")
    assert (sharded_dir / "model.safetensors.index.json").exists()
    sharded = compute_reference(sharded_dir, ids)
    for label in ("base", "lora"):
        assert np.array_equal(sharded[label][0], ref[label][0]), "sharded copy gives different logits"
    write_reference(sharded_dir, text, ids, sharded, tok)

    print("tiny-llama")
    tok, names = train_byte_level_bpe(texts, 512)
    config = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=192, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                         rope_theta=500000.0, rms_norm_eps=1e-6, tie_word_embeddings=True,
                         bos_token_id=0, eos_token_id=0)
    # rank_pattern/alpha_pattern: v_proj at rank 4 everywhere, o_proj with
    # alpha 32, and one module named by its full path.
    patterns = {"rank_pattern": {"v_proj": 4},
                "alpha_pattern": {"model.layers.1.mlp.down_proj": 4, "o_proj": 32}}
    llama_dir, text, ids = build(args.out, "tiny-llama", LlamaForCausalLM, config, tok, names, texts,
                                 seed=4321, embed_std=0.3, logit_scale=2.5,
                                 lora_patterns=patterns)
    use_legacy_rope_theta(llama_dir)
    ref = compute_reference(llama_dir, ids)
    write_reference(llama_dir, text, ids, ref, tok)

    for suffix, dtype in (("bf16", torch.bfloat16), ("f16", torch.float16)):
        print(f"tiny-llama-{suffix}")
        variant_dir = args.out / f"tiny-llama-{suffix}"
        copy_variant(llama_dir, variant_dir, dtype=dtype)
        use_legacy_rope_theta(variant_dir)
        write_reference(variant_dir, text, ids, compute_reference(variant_dir, ids), tok)


if __name__ == "__main__":
    main()
