/* Chat templates: a conversation rendered into the prompt text the model
 * was trained on, as HF's apply_chat_template(add_generation_prompt=True)
 * renders it with the model's own Jinja template. Instead of a Jinja
 * interpreter, the template's text is recognised as one of the families
 * below and rendered in C; tests/serve/test_serve_chat_template.c checks the
 * output against HF's on committed fixtures
 * (tools/make_chat_template_fixtures.py).
 *
 *   ChatML (SmolLM2, Qwen): <|im_start|>ROLE\nCONTENT<|im_end|>\n per
 *     message, then <|im_start|>assistant\n. A template that writes a
 *     system message of its own when the conversation has none (SmolLM2's
 *     "You are a helpful AI assistant named SmolLM...") keeps doing so.
 *   Llama 3: BOS, then <|start_header_id|>ROLE<|end_header_id|>\n\n
 *     CONTENT(trimmed)<|eot_id|> per message, then the assistant header.
 *   Mistral (Instruct v0.1): BOS, [INST] USER [/INST] and ASSISTANT EOS
 *     alternating from a user message; no system role. */
#ifndef MEMLLM_COORDINATOR_SERVE_CHAT_TEMPLATE_H
#define MEMLLM_COORDINATOR_SERVE_CHAT_TEMPLATE_H

#include "err.h"
#include "serve_request.h"
#include "tokenizer.h"

enum chat_template_kind {
    CHAT_TEMPLATE_NONE, /* the model has none memllm knows: chat is refused */
    CHAT_TEMPLATE_CHATML,
    CHAT_TEMPLATE_LLAMA3,
    CHAT_TEMPLATE_MISTRAL,
};

struct chat_template {
    enum chat_template_kind kind;
    char *default_system; /* ChatML: the system message added when none is given */
    char *bos, *eos;      /* the token texts the template writes */
    /* The text of the token that ends the assistant's turn (generation stops
     * at it): <|im_end|>, <|eot_id|>, or EOS. */
    const char *end_of_turn;
};

/* Recognises a Jinja template's text (NULL or "": none; then `fallback`
 * decides: CHAT_TEMPLATE_CHATML for a vocabulary with <|im_start|>). A
 * template of another family is refused, naming what was recognised. */
int chat_template_from_text(struct chat_template *t, const char *jinja, const char *bos,
                            const char *eos, enum chat_template_kind fallback, struct mm_err *err);

/* The template of the model at model_path (GGUF: tokenizer.chat_template;
 * HF directory: chat_template in tokenizer_config.json), its BOS and EOS
 * texts from tok. A model without one gets CHAT_TEMPLATE_NONE, or ChatML
 * when its vocabulary has <|im_start|>. */
int chat_template_load(struct chat_template *t, const char *model_path, const struct tokenizer *tok,
                       struct mm_err *err);
void chat_template_free(struct chat_template *t);

/* The prompt text of a conversation, ending where the assistant's answer
 * begins (malloc'd). NULL with err set when the template refuses the
 * conversation (Mistral: a system message, roles not alternating). */
char *chat_template_render(const struct chat_template *t, const struct serve_message *m, int n,
                           struct mm_err *err);

#endif
