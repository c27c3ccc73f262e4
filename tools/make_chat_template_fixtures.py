#!/usr/bin/env python3
"""Renders conversations with HF transformers' apply_chat_template into
tests/fixtures/chat_templates/rendered.json, the reference that
tests/serve/test_serve_chat_template.c compares memllm's C chat templates with
(coordinator/serve/requests/serve_chat_template.c).

The templates are the models' own Jinja texts, embedded here (no download):
SmolLM2-135M-Instruct's as its GGUF holds it (tokenizer.chat_template of
models/SmolLM2-135M-Instruct.Q4_1.gguf), a plain ChatML one (no default
system message), Meta-Llama-3-8B-Instruct's and Mistral-7B-Instruct-v0.1's.
Each case records the template text, the BOS/EOS texts, the messages and
HF's rendering with add_generation_prompt=True (what memllm serve renders);
a conversation the template refuses records the refusal.

    python3 tools/make_chat_template_fixtures.py   (needs transformers)
"""
import json
import os

from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

TEMPLATES = {
    "smollm2": {
        "bos": "<|im_start|>",
        "eos": "<|im_end|>",
        "template": "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    },
    "chatml": {
        "bos": "<|endoftext|>",
        "eos": "<|im_end|>",
        "template": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    },
    "llama3": {
        "bos": "<|begin_of_text|>",
        "eos": "<|end_of_text|>",
        "template": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
    },
    "mistral": {
        "bos": "<s>",
        "eos": "</s>",
        "template": "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}",
    },
}

CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Capital of Italy?"},
    ],
    [
        {"role": "user", "content": "  Hi there!\n"},
        {"role": "assistant", "content": "Hello. How can I help?"},
        {"role": "user", "content": "Tell me about Zürich — in 2 lines.\n\nThanks"},
    ],
    [
        {"role": "system", "content": ""},
        {"role": "user", "content": "({MEM_READ(Paris>>country>>)-->"},
    ],
    [{"role": "assistant", "content": "I start."}],
]


def tokenizer(bos, eos, template):
    vocab = {"<unk>": 0, bos: 1, eos: 2}
    t = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                bos_token=bos, eos_token=eos, unk_token="<unk>")
    t.chat_template = template
    return t


def main():
    cases = []
    for name, spec in TEMPLATES.items():
        tok = tokenizer(spec["bos"], spec["eos"], spec["template"])
        for messages in CONVERSATIONS:
            case = {"template_name": name, "template": spec["template"], "bos": spec["bos"],
                    "eos": spec["eos"], "messages": messages}
            try:
                case["text"] = tok.apply_chat_template(messages, tokenize=False,
                                                       add_generation_prompt=True)
            except Exception as e:  # the template's raise_exception
                case["error"] = str(e)
            cases.append(case)
    out = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "chat_templates",
                       "rendered.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{out}: {len(cases)} cases")


if __name__ == "__main__":
    main()
