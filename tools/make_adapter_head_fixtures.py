#!/usr/bin/env python3
"""PEFT adapters that adapt the ends of the model, for tests/worker/test_lora_head.c.

    python3 tools/make_adapter_head_fixtures.py      # ~10 s on 2 cores

For tiny-llama (tied embeddings) and tiny-mistral (untied LM head), made by
tools/make_model_fixtures.py (left as they are; it rewrites those folders,
so run this after it), writes
tests/fixtures/models/<model>/adapter-head/:

  adapter_config.json, adapter_model.safetensors
      a PEFT 0.21 adapter with LoRA r 4 on lm_head only and
      trainable_token_indices: 4 ids, 3 of the prompt's and one it lacks
      (the rows: random, non-zero), so the
      blocks are the base model's and only the embedding and head change.
  logits.f32
      HF PEFT's logits with that adapter, loaded back with
      PeftModel.from_pretrained, at each of the fixture's reference.json
      prompt_ids: f32 LE [n_positions][vocab], as logits_lora.f32.

What PEFT 0.21 does with such an adapter, asserted here against a plain
computation from the base weights:

  - the saved rows ("...embed_tokens.token_adapter.trainable_tokens_delta")
    are the tokens' full new embedding rows (index_copy), not deltas;
  - with tie_word_embeddings the LM head is tied to them too (a tied
    TrainableTokensLayer under the head's LoRA): the head's rows of those
    tokens are the new rows; untied, the head keeps its own rows;
  - logits = W' x + (lora_alpha / r) B A x, x the final-normed hidden state.
"""
import copy
import json
from pathlib import Path

import safetensors.torch
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "tests" / "fixtures" / "models"
# The trainable tokens: three of the prompt's (its first, then positions 4
# and 5) and one it lacks (509, the MemLLM token "({"), so the prompt has
# tokens on both sides.
PROMPT_POSITIONS = [0, 4, 5]
ABSENT_TOKEN = 509
RANK, ALPHA = 4, 8
ROWS_NAME = "base_model.model.model.embed_tokens.token_adapter.trainable_tokens_delta"
# HF PEFT against the plain computation, both float32 over 2 layers.
AGREE_TOL = 1e-4
# The adapter must move the logits by far more than the tests' tolerance.
MIN_EFFECT = 0.5


def make_adapter(model, token_ids, seed):
    """PEFT's model with random head LoRA (B nonzero, unlike PEFT's init) and
    random token rows at the embedding's scale."""
    config = LoraConfig(r=RANK, lora_alpha=ALPHA, lora_dropout=0.0, target_modules=["lm_head"],
                        trainable_token_indices=token_ids, bias="none", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    gen = torch.Generator().manual_seed(seed)
    embed_std = model.get_input_embeddings().weight.std().item()
    with torch.no_grad():
        for name, p in sorted(peft_model.named_parameters()):
            if ".lora_A." in name:
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[1] ** 0.5)
            elif ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3 / p.shape[1] ** 0.5)
            elif "trainable_tokens_delta" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * embed_std)
    return peft_model


def save_adapter(peft_model, token_ids, out):
    peft_model.save_pretrained(out)
    # PEFT also writes an empty model-card template; nothing reads it.
    (out / "README.md").unlink()
    # target_modules is a set in PEFT: sorted, a rerun writes the same bytes.
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["target_modules"] = sorted(cfg["target_modules"])
    cfg_path.write_text(json.dumps(cfg, indent=2) + "\n")
    assert cfg["trainable_token_indices"] == token_ids, cfg["trainable_token_indices"]


def plain_logits(model_dir, adapter, token_ids, ids, tie_head_rows):
    """The base model with the rows written into the embedding (and, for a
    tied model unless not tie_head_rows, into the head it shares) plus the
    head's LoRA on the head's input."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    rows = adapter[ROWS_NAME]
    index = torch.tensor(token_ids)
    with torch.no_grad():
        embed = model.get_input_embeddings().weight
        head = model.get_output_embeddings().weight
        tied = embed.data_ptr() == head.data_ptr()
        if tied and not tie_head_rows:
            model.get_output_embeddings().weight = torch.nn.Parameter(head.detach().clone())
        embed.index_copy_(0, index, rows)
    captured = {}
    model.get_output_embeddings().register_forward_pre_hook(lambda _m, args: captured.update(x=args[0]))
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
        a = adapter["base_model.model.lm_head.lora_A.weight"]
        b = adapter["base_model.model.lm_head.lora_B.weight"]
        return logits + (ALPHA / RANK) * captured["x"][0] @ a.T @ b.T


def build(name, seed):
    model_dir = MODELS / name
    out = model_dir / "adapter-head"
    out.mkdir(exist_ok=True)
    ids = json.loads((model_dir / "reference.json").read_text())["prompt_ids"]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    tied = bool(model.config.tie_word_embeddings)
    token_ids = [ids[i] for i in PROMPT_POSITIONS] + [ABSENT_TOKEN]
    assert len(set(token_ids)) == len(token_ids) and ABSENT_TOKEN not in ids, token_ids
    save_adapter(make_adapter(model, token_ids, seed), token_ids, out)

    # What a user gets: the saved adapter loaded back onto a fresh base.
    base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(base, out)
    peft_model.eval()
    with torch.no_grad():
        got = peft_model(input_ids=torch.tensor([ids])).logits[0]
        base_logits = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)(
            input_ids=torch.tensor([ids])).logits[0]

    adapter = safetensors.torch.load_file(out / "adapter_model.safetensors")
    assert adapter[ROWS_NAME].shape == (len(token_ids), model.config.hidden_size)
    want = plain_logits(model_dir, adapter, token_ids, ids, tie_head_rows=tied)
    diff = (got - want).abs().max().item()
    assert diff < AGREE_TOL, f"{name}: PEFT vs plain computation: {diff}"
    if tied:
        # the tie matters: without the head's new rows the logits differ
        untied = plain_logits(model_dir, adapter, token_ids, ids, tie_head_rows=False)
        assert (got - untied).abs().max().item() > MIN_EFFECT, f"{name}: head rows have no effect"
    effect = (got - base_logits).abs().max().item()
    assert effect > MIN_EFFECT, f"{name}: the adapter moves the logits by only {effect}"
    got.numpy().astype("<f4").tofile(out / "logits.f32")
    print(f"{name}: tied={tied}, max |PEFT - plain| = {diff:.2g}, max |adapter effect| = {effect:.2f}")


def main():
    torch.manual_seed(0)
    for seed, name in enumerate(["tiny-mistral", "tiny-llama"]):
        build(name, 100 + seed)


if __name__ == "__main__":
    main()
