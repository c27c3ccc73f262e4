#include "serve_chat_template.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

#define IM_SYSTEM "<|im_start|>system"

/* ChatML templates that write a system message of their own hold it as a
 * literal: "<|im_start|>system" and a newline (raw, or Jinja's "\n"
 * escape), the text, "<|im_end|>". A template where that text is an
 * expression (message['content']) has no default. */
static int chatml_default_system(const char *jinja, char **out, struct mm_err *err)
{
    *out = NULL;
    for (const char *p = strstr(jinja, IM_SYSTEM); p; p = strstr(p + 1, IM_SYSTEM)) {
        const char *text = p + strlen(IM_SYSTEM);
        if (*text == '\n')
            text++;
        else if (text[0] == '\\' && text[1] == 'n')
            text += 2;
        else
            continue;
        const char *end = strstr(text, "<|im_end|>");
        if (!end) continue;
        size_t len = (size_t)(end - text);
        if (memchr(text, '\'', len) || memchr(text, '"', len) || memchr(text, '{', len)) continue;
        if (!(*out = strndup(text, len))) {
            mm_err_set(err, "out of memory");
            return -1;
        }
        return 0;
    }
    return 0;
}

int chat_template_from_text(struct chat_template *t, const char *jinja, const char *bos,
                            const char *eos, enum chat_template_kind fallback, struct mm_err *err)
{
    memset(t, 0, sizeof(*t));
    if (!jinja || !*jinja)
        t->kind = fallback;
    else if (strstr(jinja, "<|im_start|>"))
        t->kind = CHAT_TEMPLATE_CHATML;
    else if (strstr(jinja, "<|start_header_id|>"))
        t->kind = CHAT_TEMPLATE_LLAMA3;
    else if (strstr(jinja, "[INST]") && !strstr(jinja, "<<SYS>>"))
        t->kind = CHAT_TEMPLATE_MISTRAL;
    else {
        mm_err_set(err, "chat template not recognised (memllm renders ChatML, Llama 3 and "
                        "Mistral Instruct templates)");
        return -1;
    }
    t->bos = strdup(bos ? bos : "");
    t->eos = strdup(eos ? eos : "");
    if (!t->bos || !t->eos ||
        (t->kind == CHAT_TEMPLATE_CHATML && jinja &&
         chatml_default_system(jinja, &t->default_system, err))) {
        chat_template_free(t);
        mm_err_set(err, "out of memory");
        return -1;
    }
    t->end_of_turn = t->kind == CHAT_TEMPLATE_CHATML   ? "<|im_end|>"
                     : t->kind == CHAT_TEMPLATE_LLAMA3 ? "<|eot_id|>"
                                                       : t->eos;
    return 0;
}

void chat_template_free(struct chat_template *t)
{
    free(t->default_system);
    free(t->bos);
    free(t->eos);
    memset(t, 0, sizeof(*t));
}

/* tokenizer_config.json's "chat_template" (a string; the list form, named
 * templates, is read as none). */
static char *hf_template(const char *dir, struct mm_err *err)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", dir);
    json_error_t jerr;
    json_t *cfg = json_load_file(path, 0, &jerr);
    if (!cfg) return NULL; /* no config: no template */
    const char *s = json_string_value(json_object_get(cfg, "chat_template"));
    char *out = s ? strdup(s) : NULL;
    json_decref(cfg);
    if (s && !out) mm_err_set(err, "out of memory");
    return out;
}

static char *gguf_template(const char *path, struct mm_err *err)
{
    struct gguf_file *g = gguf_open(path, err);
    if (!g) return NULL;
    const struct gguf_kv *kv = gguf_find_kv(g, "tokenizer.chat_template");
    char *out = NULL;
    if (kv && kv->type == GGUF_STRING && !(out = strndup(kv->v.str.ptr, kv->v.str.len)))
        mm_err_set(err, "out of memory");
    gguf_close(g);
    return out;
}

int chat_template_load(struct chat_template *t, const char *model_path, const struct tokenizer *tok,
                       struct mm_err *err)
{
    size_t n = strlen(model_path);
    int is_gguf = n > 5 && !strcmp(model_path + n - 5, ".gguf");
    err->msg[0] = 0;
    char *jinja = is_gguf ? gguf_template(model_path, err) : hf_template(model_path, err);
    if (!jinja && err->msg[0]) return -1;
    const char *bos = tok_bos(tok) >= 0 ? tok_piece(tok, tok_bos(tok)) : "";
    const char *eos = tok_eos(tok) >= 0 ? tok_piece(tok, tok_eos(tok)) : "";
    enum chat_template_kind fallback =
        tok_find(tok, "<|im_start|>") >= 0 ? CHAT_TEMPLATE_CHATML : CHAT_TEMPLATE_NONE;
    int rc = chat_template_from_text(t, jinja, bos, eos, fallback, err);
    if (rc) mm_err_prefix(err, "%s", model_path);
    free(jinja);
    return rc;
}

/* Jinja's trim: leading and trailing whitespace. */
static void put_trimmed(FILE *f, const char *s)
{
    const char *ws = " \t\n\r\v\f";
    s += strspn(s, ws);
    size_t len = strlen(s);
    while (len > 0 && strchr(ws, s[len - 1]))
        len--;
    fwrite(s, 1, len, f);
}

static int render_mistral(FILE *f, const struct chat_template *t, const struct serve_message *m,
                          int n, struct mm_err *err)
{
    fputs(t->bos, f);
    for (int i = 0; i < n; i++) {
        int user = !strcmp(m[i].role, "user");
        if (user != (i % 2 == 0)) {
            mm_err_set(err,
                       "messages[%d]: this model's chat template needs the roles to "
                       "alternate user/assistant/user/..., from a user message",
                       i);
            return -1;
        }
        if (user)
            fprintf(f, "[INST] %s [/INST]", m[i].content);
        else
            fprintf(f, "%s%s", m[i].content, t->eos);
    }
    return 0;
}

char *chat_template_render(const struct chat_template *t, const struct serve_message *m, int n,
                           struct mm_err *err)
{
    if (t->kind == CHAT_TEMPLATE_NONE) {
        mm_err_set(err, "this model has no chat template memllm can render (ChatML, Llama 3, "
                        "Mistral Instruct): use /v1/completions");
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        mm_err_set(err, "out of memory");
        return NULL;
    }
    int rc = 0;
    switch (t->kind) {
    case CHAT_TEMPLATE_CHATML:
        if (t->default_system && (n == 0 || strcmp(m[0].role, "system")))
            fprintf(f, IM_SYSTEM "\n%s<|im_end|>\n", t->default_system);
        for (int i = 0; i < n; i++)
            fprintf(f, "<|im_start|>%s\n%s<|im_end|>\n", m[i].role, m[i].content);
        fputs("<|im_start|>assistant\n", f);
        break;
    case CHAT_TEMPLATE_LLAMA3:
        for (int i = 0; i < n; i++) {
            fprintf(f, "%s<|start_header_id|>%s<|end_header_id|>\n\n", i == 0 ? t->bos : "",
                    m[i].role);
            put_trimmed(f, m[i].content);
            fputs("<|eot_id|>", f);
        }
        fputs("<|start_header_id|>assistant<|end_header_id|>\n\n", f);
        break;
    case CHAT_TEMPLATE_MISTRAL:
        rc = render_mistral(f, t, m, n, err);
        break;
    case CHAT_TEMPLATE_NONE:
        break;
    }
    if (fclose(f) || rc) {
        if (!rc) mm_err_set(err, "out of memory");
        free(buf);
        return NULL;
    }
    return buf;
}
