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
is only written when two independent implementations agree. When
llama-cpp-python is installed, tiny-llama is also written as an F32 GGUF with
llama.cpp's outputs as the reference (make_gguf_fixtures).
Everything is seeded; a rerun writes the same bytes. tools/README.md lists
the fixtures and what each covers.
"""

import argparse
import json
import os
import re
import shutil
from pathlib import Path

import gguf
import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import (AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM, MistralConfig, MistralForCausalLM,
                          PreTrainedTokenizerFast)

try:
    import llama_cpp
except ImportError:
    llama_cpp = None

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


def check_agree(what, got, want):
    diff = float(np.abs(got - want).max())
    scale = float(np.abs(want).max())
    print(f"  {what}: max |diff| {diff:.2e} (max |logit| {scale:.1f})")
    assert diff < AGREE_TOL * max(1.0, scale), f"{what}: the two implementations disagree by {diff}"


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
        check_agree(f"{model_dir.name} {label}: HF float32 vs float64 reference", logits,
                    reference_forward(w, cfg, prompt_ids))
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
    # PEFT also writes an empty model-card template; nothing reads it.
    (model_dir / "adapter" / "README.md").unlink()
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


# GGUF ------------------------------------------------------------------------


def rope_permute(w, n_heads):
    """HF's Q/K row order -> llama.cpp's. HF rotates dim i with i + d/2 of a
    head; llama.cpp's "normal" rope rotates 2i with 2i+1, so the conversion
    interleaves each head's two halves: new row 2i+t <- old row t*d/2 + i."""
    rows = w.shape[0]
    return w.reshape(n_heads, 2, rows // n_heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def write_llama_gguf(hf_dir, path, qtype):
    """The HF Llama checkpoint as llama.cpp's convert_hf_to_gguf.py writes
    it: arch "llama", tensors renamed, Q/K permuted, norms kept in F32, 2-D
    weights in qtype, no output.weight for tied embeddings, and the GPT-2
    tokenizer (tokens by id, types, merges, special ids) as metadata."""
    cfg = json.loads((hf_dir / "config.json").read_text())
    tok = json.loads((hf_dir / "tokenizer.json").read_text())
    weights = load_file(hf_dir / "model.safetensors")
    n_heads, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    head_dim = cfg.get("head_dim") or cfg["hidden_size"] // n_heads
    assert head_dim * n_heads == cfg["hidden_size"], "key_length/value_length metadata would be needed"

    w = gguf.GGUFWriter(str(path), "llama")
    w.add_type("model")
    w.add_name(hf_dir.name)
    w.add_vocab_size(cfg["vocab_size"])
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_rope_dimension_count(head_dim)
    w.add_head_count(n_heads)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"])
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_file_type(gguf.LlamaFileType.ALL_F32 if qtype == gguf.GGMLQuantizationType.F32
                    else gguf.LlamaFileType.MOSTLY_Q8_0)
    if qtype != gguf.GGMLQuantizationType.F32:
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    vocab = tok["model"]["vocab"]
    added = {t["id"]: t for t in tok["added_tokens"]}
    tokens, types = [None] * cfg["vocab_size"], [gguf.TokenType.NORMAL] * cfg["vocab_size"]
    for text, i in vocab.items():
        tokens[i] = text
    for i, t in added.items():
        tokens[i] = t["content"]
        types[i] = gguf.TokenType.CONTROL if t["special"] else gguf.TokenType.USER_DEFINED
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt-2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([" ".join(m) if isinstance(m, list) else m for m in tok["model"]["merges"]])
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_add_bos_token(False)

    def add(name, tensor, quantize=True):
        data = tensor.float().numpy()
        if quantize and data.ndim == 2 and qtype != gguf.GGMLQuantizationType.F32:
            w.add_tensor(name, gguf.quants.quantize(data, qtype), raw_dtype=qtype)
        else:
            w.add_tensor(name, data)

    add("token_embd.weight", weights["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{i}."
        add(f"blk.{i}.attn_norm.weight", weights[p + "input_layernorm.weight"])
        add(f"blk.{i}.attn_q.weight", rope_permute(weights[p + "self_attn.q_proj.weight"], n_heads))
        add(f"blk.{i}.attn_k.weight", rope_permute(weights[p + "self_attn.k_proj.weight"], n_kv))
        add(f"blk.{i}.attn_v.weight", weights[p + "self_attn.v_proj.weight"])
        add(f"blk.{i}.attn_output.weight", weights[p + "self_attn.o_proj.weight"])
        add(f"blk.{i}.ffn_norm.weight", weights[p + "post_attention_layernorm.weight"])
        add(f"blk.{i}.ffn_gate.weight", weights[p + "mlp.gate_proj.weight"])
        add(f"blk.{i}.ffn_up.weight", weights[p + "mlp.up_proj.weight"])
        add(f"blk.{i}.ffn_down.weight", weights[p + "mlp.down_proj.weight"])
    add("output_norm.weight", weights["model.norm.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def llamacpp_reference(gguf_path, prompt_text, prompt_ids):
    """llama.cpp's logits for prompt_ids and its greedy continuation; also
    checks that llama.cpp tokenises prompt_text to the same ids as HF, i.e.
    that the tokenizer metadata is complete. The KV cache is kept in F32
    (llama.cpp's default F16 cache alone moves logits by ~1e-2)."""
    f32 = gguf.GGMLQuantizationType.F32.value
    llm = llama_cpp.Llama(model_path=str(gguf_path), n_ctx=128, n_batch=128, n_threads=2, n_threads_batch=2,
                          type_k=f32, type_v=f32, logits_all=True, verbose=False)
    ids = llm.tokenize(prompt_text.encode("utf-8"), add_bos=True, special=False)
    assert ids == prompt_ids, f"{gguf_path.name}: llama.cpp tokenises the prompt differently from HF"
    llm.reset()
    llm.eval(prompt_ids)
    logits = np.array(llm.scores[:len(prompt_ids)], dtype=np.float32)
    llm.reset()
    llm.eval(prompt_ids[:GREEDY_PROMPT])
    greedy, min_margin = [], float("inf")
    for _ in range(GREEDY_NEW):
        last = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        top2 = np.sort(last)[-2:]
        min_margin = min(min_margin, float(top2[1] - top2[0]))
        greedy.append(int(last.argmax()))
        llm.eval([greedy[-1]])
    return logits, greedy, min_margin


def make_gguf_fixtures(out_root, llama_dir, prompt_text, prompt_ids, tok):
    """tiny-llama-gguf-f32/model.gguf with llama.cpp's reference outputs
    (no adapter: llama.cpp takes LoRA only as GGUF adapters). It must
    reproduce HF's logits, which proves the conversion (permuted Q/K,
    adjacent-pair rope). Quantized GGUFs are not made here: llama.cpp rounds
    the activations to 8 bits too, which on these tiny random models moves
    logits by ~1, too ill-conditioned for a logits reference; quantized
    products are proven by the kernel tests and on SmolLM2 against
    llama.cpp."""
    hf = np.fromfile(llama_dir / "logits.f32", dtype="<f4").reshape(N_POSITIONS, -1)
    for qtype in (gguf.GGMLQuantizationType.F32,):
        model_dir = out_root / f"tiny-llama-gguf-{qtype.name.lower()}"
        print(model_dir.name)
        if model_dir.exists():
            shutil.rmtree(model_dir)
        model_dir.mkdir()
        write_llama_gguf(llama_dir, model_dir / "model.gguf", qtype)
        logits, greedy, margin = llamacpp_reference(model_dir / "model.gguf", prompt_text, prompt_ids)
        from_gguf = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file="model.gguf", dtype=torch.float32,
                                                         attn_implementation="eager")
        from_gguf.eval()
        from_gguf_logits = hf_logits(from_gguf, prompt_ids)
        diff_hf = float(np.abs(logits - hf).max())
        diff_gguf = float(np.abs(logits - from_gguf_logits).max())
        print(f"  llama.cpp vs HF on the original f32 weights: max |diff| {diff_hf:.2e}; "
              f"vs HF reading the GGUF: {diff_gguf:.2e}; greedy min margin {margin:.3f}")
        logits.astype("<f4").tofile(model_dir / "logits.f32")
        reference = {
            "prompt_ids": prompt_ids,
            "n_positions": N_POSITIONS,
            "vocab_size": tok.get_vocab_size(),
            "logits": "logits.f32",
            "greedy_prompt_ids": prompt_ids[:GREEDY_PROMPT],
            "greedy_ids": greedy,
            "prompt_text": prompt_text,
            "greedy_min_margin": margin,
            "reference_implementation": f"llama-cpp-python {llama_cpp.__version__}, F32 KV cache",
            "max_abs_diff_from_hf_f32": diff_hf,
        }
        check_agree("llama.cpp on the F32 GGUF vs HF", logits, hf)
        check_agree("HF reading the F32 GGUF vs HF", from_gguf_logits, hf)
        assert margin > MIN_GREEDY_MARGIN, f"{model_dir.name}: greedy margin {margin} too small"
        (model_dir / "reference.json").write_text(json.dumps(reference, indent=1, ensure_ascii=False) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "fixtures" / "models")
    parser.add_argument("--data", type=Path,
                        default=Path(os.environ.get("MEMLLM_DATA", ROOT / "data")))
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
                                 seed=4325, embed_std=0.1, logit_scale=7.5,
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

    if llama_cpp is None:
        print("llama-cpp-python is not installed: GGUF fixtures left as they are")
    else:
        make_gguf_fixtures(args.out, llama_dir, text, ids, tok)


if __name__ == "__main__":
    main()
