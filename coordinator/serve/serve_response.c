#include "serve_response.h"

#include <string.h>

/* OpenAI's finish reasons: EOS, a stop token and a stop string are all
 * "stop". */
static const char *finish_reason(const struct serve_job *j)
{
    return j->finish && !strcmp(j->finish, "length") ? "length" : "stop";
}

static json_t *usage(const struct serve_job *j)
{
    return json_pack("{s:i, s:i, s:i}", "prompt_tokens", j->req.n_prompt, "completion_tokens",
                     j->n_generated, "total_tokens", j->req.n_prompt + j->n_generated);
}

static json_t *logprobs(enum serve_route route, const struct serve_job *j)
{
    if (!j->r.logprobs) return json_null();
    if (route == SERVE_CHAT) {
        json_t *content = json_array();
        for (int i = 0; i < j->n_tok; i++) {
            json_t *bytes = json_array();
            for (const unsigned char *p = (const unsigned char *)j->token_texts[i]; *p; p++)
                json_array_append_new(bytes, json_integer(*p));
            json_array_append_new(
                content, json_pack("{s:s, s:f, s:o, s:[]}", "token", j->token_texts[i], "logprob",
                                   (double)j->logprobs[i], "bytes", bytes, "top_logprobs"));
        }
        return json_pack("{s:o}", "content", content);
    }
    json_t *tokens = json_array(), *lps = json_array(), *offsets = json_array();
    size_t offset = 0;
    for (int i = 0; i < j->n_tok; i++) {
        json_array_append_new(tokens, json_string(j->token_texts[i]));
        json_array_append_new(lps, json_real(j->logprobs[i]));
        json_array_append_new(offsets, json_integer((json_int_t)offset));
        offset += strlen(j->token_texts[i]);
    }
    return json_pack("{s:o, s:o, s:n, s:o}", "tokens", tokens, "token_logprobs", lps,
                     "top_logprobs", "text_offset", offsets);
}

static json_t *memllm_fields(const struct serve_job *j)
{
    return json_pack("{s:s, s:s, s:O}", "text", j->text_with_api ? j->text_with_api : "",
                     "text_without_api", j->out ? j->out : "", "reads",
                     j->reads ? j->reads : json_null());
}

/* One choice: its text (delta or whole), finish reason and extras. */
static json_t *choice(enum serve_route route, json_t *text, int role, int delta,
                      const struct serve_job *j)
{
    json_t *c = json_pack("{s:i}", "index", 0);
    if (route == SERVE_CHAT) {
        json_t *msg = json_object();
        if (role || !delta) json_object_set_new(msg, "role", json_string("assistant"));
        json_object_set_new(msg, "content", text);
        json_object_set_new(c, delta ? "delta" : "message", msg);
    } else {
        json_object_set_new(c, "text", text);
    }
    json_object_set_new(c, "finish_reason", j ? json_string(finish_reason(j)) : json_null());
    json_object_set_new(c, "logprobs", j ? logprobs(route, j) : json_null());
    if (j && j->r.memory) json_object_set_new(c, "memllm", memllm_fields(j));
    return c;
}

static json_t *envelope(const struct serve_reply *m, int chunk)
{
    const char *object = m->route == SERVE_CHAT
                             ? (chunk ? "chat.completion.chunk" : "chat.completion")
                             : "text_completion";
    return json_pack("{s:s, s:s, s:I, s:s}", "id", m->id, "object", object, "created",
                     (json_int_t)m->created, "model", m->model);
}

json_t *serve_response_body(const struct serve_reply *m, const struct serve_job *j)
{
    json_t *body = envelope(m, 0);
    json_t *text = json_stringn(j->out ? j->out : "", j->out_len);
    json_object_set_new(body, "choices", json_pack("[o]", choice(m->route, text, 0, 0, j)));
    json_object_set_new(body, "usage", usage(j));
    return body;
}

json_t *serve_response_chunk(const struct serve_reply *m, const char *text, size_t len, int role,
                             const struct serve_job *j)
{
    json_t *body = envelope(m, 1);
    json_t *t = json_stringn(text, len);
    json_object_set_new(body, "choices", json_pack("[o]", choice(m->route, t, role, 1, j)));
    return body;
}

json_t *serve_response_usage_chunk(const struct serve_reply *m, const struct serve_job *j)
{
    json_t *body = envelope(m, 1);
    json_object_set_new(body, "choices", json_array());
    json_object_set_new(body, "usage", usage(j));
    return body;
}

json_t *serve_response_error(const struct serve_error *e)
{
    return json_pack("{s:{s:s, s:s, s:n}}", "error", "message", e->message, "type", e->type,
                     "code");
}
