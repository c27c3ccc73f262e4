#include "serve_request.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BAD_REQUEST "invalid_request_error"

void serve_error_set(struct serve_error *e, int status, const char *type, const char *fmt, ...)
{
    e->status = status;
    e->type = type;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

void serve_request_free(struct serve_request *r)
{
    free(r->model);
    free(r->prompt);
    for (int i = 0; i < r->n_messages; i++) {
        free(r->messages[i].role);
        free(r->messages[i].content);
    }
    for (int i = 0; i < r->n_stop; i++)
        free(r->stop[i]);
    memset(r, 0, sizeof(*r));
}

static char *dup_or_oom(const char *s, struct serve_error *e)
{
    char *d = strdup(s);
    if (!d) serve_error_set(e, 500, "server_error", "out of memory");
    return d;
}

/* The field `key` if present and not null (JSON null means "default", as
 * OpenAI's API takes it). */
static json_t *field(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

static int get_int(json_t *obj, const char *key, long long lo, long long hi, long long *out,
                   struct serve_error *e)
{
    json_t *v = field(obj, key);
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
        serve_error_set(e, 400, BAD_REQUEST, "'%s' must be an integer in [%lld, %lld]", key, lo,
                        hi);
        return -1;
    }
    *out = json_integer_value(v);
    return 0;
}

static int get_number(json_t *obj, const char *key, double lo, double hi, double *out,
                      struct serve_error *e)
{
    json_t *v = field(obj, key);
    if (!v) return 0;
    double x = json_number_value(v);
    if (!json_is_number(v) || !isfinite(x) || x < lo || x > hi) {
        serve_error_set(e, 400, BAD_REQUEST, "'%s' must be a number in [%g, %g]", key, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int get_bool(json_t *obj, const char *key, int *out, struct serve_error *e)
{
    json_t *v = field(obj, key);
    if (!v) return 0;
    if (!json_is_boolean(v)) {
        serve_error_set(e, 400, BAD_REQUEST, "'%s' must be true or false", key);
        return -1;
    }
    *out = json_is_true(v);
    return 0;
}

/* OpenAI parameters memllm does not implement: refused unless they ask for
 * the default, so that a client never gets something other than it asked. */
static int refuse_unsupported(json_t *obj, struct serve_error *e)
{
    static const char *zero_numbers[] = {"frequency_penalty", "presence_penalty"};
    for (size_t i = 0; i < sizeof(zero_numbers) / sizeof(*zero_numbers); i++) {
        json_t *v = field(obj, zero_numbers[i]);
        if (v && (!json_is_number(v) || json_number_value(v) != 0.0)) {
            serve_error_set(e, 400, BAD_REQUEST, "'%s' is not supported (only 0)", zero_numbers[i]);
            return -1;
        }
    }
    json_t *bias = field(obj, "logit_bias");
    if (bias && (!json_is_object(bias) || json_object_size(bias) != 0)) {
        serve_error_set(e, 400, BAD_REQUEST, "'logit_bias' is not supported");
        return -1;
    }
    json_t *echo = field(obj, "echo");
    if (echo && !json_is_false(echo)) {
        serve_error_set(e, 400, BAD_REQUEST, "'echo' is not supported (only false)");
        return -1;
    }
    json_t *suffix = field(obj, "suffix");
    if (suffix && !(json_is_string(suffix) && json_string_length(suffix) == 0)) {
        serve_error_set(e, 400, BAD_REQUEST, "'suffix' is not supported");
        return -1;
    }
    static const char *absent[] = {"tools", "functions", "tool_choice", "function_call",
                                   "response_format"};
    for (size_t i = 0; i < sizeof(absent) / sizeof(*absent); i++)
        if (field(obj, absent[i])) {
            serve_error_set(e, 400, BAD_REQUEST, "'%s' is not supported", absent[i]);
            return -1;
        }
    long long n = 1, best_of = 1;
    if (get_int(obj, "n", 1, 1, &n, e)) {
        serve_error_set(e, 400, BAD_REQUEST, "'n' must be 1 (one choice per request)");
        return -1;
    }
    if (get_int(obj, "best_of", 1, 1, &best_of, e)) {
        serve_error_set(e, 400, BAD_REQUEST, "'best_of' must be 1");
        return -1;
    }
    return 0;
}

static int parse_stop(json_t *obj, struct serve_request *r, struct serve_error *e)
{
    json_t *v = field(obj, "stop");
    if (!v) return 0;
    json_t *one[1] = {v};
    size_t n = 1;
    if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > SERVE_MAX_STOPS) {
            serve_error_set(e, 400, BAD_REQUEST, "'stop' holds at most %d strings",
                            SERVE_MAX_STOPS);
            return -1;
        }
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(v) ? json_array_get(v, i) : one[0];
        if (!json_is_string(s) || json_string_length(s) == 0) {
            serve_error_set(e, 400, BAD_REQUEST,
                            "'stop' must be a non-empty string or an array of them");
            return -1;
        }
        if (!(r->stop[r->n_stop] = dup_or_oom(json_string_value(s), e))) return -1;
        r->n_stop++;
    }
    return 0;
}

/* A message's content: a string, or an array of {"type": "text", "text":
 * ...} parts, joined (what OpenAI's clients send for text-only content). */
static char *message_content(json_t *c, size_t index, struct serve_error *e)
{
    if (json_is_string(c)) return dup_or_oom(json_string_value(c), e);
    if (!json_is_array(c)) {
        serve_error_set(e, 400, BAD_REQUEST,
                        "'messages[%zu].content' must be a string or an array of text parts",
                        index);
        return NULL;
    }
    size_t len = 0, k;
    json_t *part;
    json_array_foreach(c, k, part)
    {
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *text = json_object_get(part, "text");
        if (!type || strcmp(type, "text") || !json_is_string(text)) {
            serve_error_set(e, 400, BAD_REQUEST,
                            "'messages[%zu].content[%zu]' must be {\"type\": \"text\", \"text\": "
                            "STRING} (only text is supported)",
                            index, k);
            return NULL;
        }
        len += json_string_length(text);
    }
    char *out = malloc(len + 1);
    if (!out) {
        serve_error_set(e, 500, "server_error", "out of memory");
        return NULL;
    }
    len = 0;
    json_array_foreach(c, k, part)
    {
        json_t *text = json_object_get(part, "text");
        memcpy(out + len, json_string_value(text), json_string_length(text));
        len += json_string_length(text);
    }
    out[len] = 0;
    return out;
}

static int parse_messages(json_t *obj, struct serve_request *r, struct serve_error *e)
{
    json_t *msgs = json_object_get(obj, "messages");
    if (!json_is_array(msgs) || json_array_size(msgs) == 0) {
        serve_error_set(e, 400, BAD_REQUEST, "'messages' must be a non-empty array");
        return -1;
    }
    if (json_array_size(msgs) > SERVE_MAX_MESSAGES) {
        serve_error_set(e, 400, BAD_REQUEST, "'messages' holds at most %d messages",
                        SERVE_MAX_MESSAGES);
        return -1;
    }
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m)
    {
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!json_is_object(m) || !role) {
            serve_error_set(e, 400, BAD_REQUEST,
                            "'messages[%zu]' must be an object with a "
                            "string 'role'",
                            i);
            return -1;
        }
        if (strcmp(role, "system") && strcmp(role, "user") && strcmp(role, "assistant")) {
            serve_error_set(e, 400, BAD_REQUEST,
                            "'messages[%zu].role' must be system, user or assistant", i);
            return -1;
        }
        struct serve_message *sm = &r->messages[r->n_messages];
        if (!(sm->role = dup_or_oom(role, e))) return -1;
        r->n_messages++;
        if (!(sm->content = message_content(json_object_get(m, "content"), i, e))) return -1;
    }
    return 0;
}

static int parse_prompt(json_t *obj, struct serve_request *r, struct serve_error *e)
{
    json_t *p = json_object_get(obj, "prompt");
    /* OpenAI takes a list of prompts, one choice each; with n = 1 only a
     * list of one is the same request. */
    if (json_is_array(p) && json_array_size(p) == 1) p = json_array_get(p, 0);
    if (!json_is_string(p)) {
        serve_error_set(e, 400, BAD_REQUEST,
                        "'prompt' must be a string (or an array of one string)");
        return -1;
    }
    if (json_string_length(p) == 0) {
        serve_error_set(e, 400, BAD_REQUEST, "'prompt' is empty");
        return -1;
    }
    return (r->prompt = dup_or_oom(json_string_value(p), e)) ? 0 : -1;
}

static int parse_sampling(json_t *obj, struct serve_request *r, struct serve_error *e)
{
    /* OpenAI's defaults: temperature 1, no top-p or top-k cut. The seed is
     * fixed when not given, so that a request always gives the same text. */
    sampler_params_default(&r->sampling);
    double temperature = 1.0, top_p = 1.0;
    long long top_k = 0, seed = (long long)r->sampling.seed;
    if (get_number(obj, "temperature", 0.0, 2.0, &temperature, e) ||
        get_number(obj, "top_p", 0.0, 1.0, &top_p, e) ||
        get_int(obj, "top_k", 0, 1 << 30, &top_k, e) ||
        get_int(obj, "seed", INT64_MIN, INT64_MAX, &seed, e))
        return -1;
    if (top_p == 0.0) {
        serve_error_set(e, 400, BAD_REQUEST, "'top_p' must be a number in (0, 1]");
        return -1;
    }
    r->sampling.temperature = (float)temperature;
    r->sampling.greedy = temperature == 0.0;
    r->sampling.top_p = (float)top_p;
    r->sampling.top_k = (int)top_k;
    r->sampling.seed = (uint64_t)seed;
    return 0;
}

static int parse_logprobs(json_t *obj, struct serve_request *r, struct serve_error *e)
{
    json_t *v = field(obj, "logprobs");
    if (!v) return 0;
    if (r->route == SERVE_CHAT) {
        long long top = 0;
        if (get_bool(obj, "logprobs", &r->logprobs, e)) return -1;
        if (get_int(obj, "top_logprobs", 0, 0, &top, e)) {
            serve_error_set(e, 400, BAD_REQUEST,
                            "'top_logprobs' must be 0 (only the chosen token's log-probability "
                            "is given)");
            return -1;
        }
        return 0;
    }
    /* Completions: the number of alternatives per token; only the chosen
     * token's log-probability is given, so any count turns them on. */
    long long n = 0;
    if (get_int(obj, "logprobs", 0, 5, &n, e)) return -1;
    r->logprobs = 1;
    return 0;
}

static int parse_object(json_t *obj, enum serve_route route, const struct serve_request_limits *lim,
                        struct serve_request *r, struct serve_error *e)
{
    if (!json_is_object(obj)) {
        serve_error_set(e, 400, BAD_REQUEST, "the body must be a JSON object");
        return -1;
    }
    r->route = route;
    json_t *model = field(obj, "model");
    if (model && !json_is_string(model)) {
        serve_error_set(e, 400, BAD_REQUEST, "'model' must be a string");
        return -1;
    }
    if (model && !(r->model = dup_or_oom(json_string_value(model), e))) return -1;
    if (route == SERVE_COMPLETIONS ? parse_prompt(obj, r, e) : parse_messages(obj, r, e)) return -1;
    long long max_tokens = 0;
    const char *max_key = route == SERVE_CHAT && field(obj, "max_completion_tokens")
                              ? "max_completion_tokens"
                              : "max_tokens";
    if (get_int(obj, max_key, 1, lim->max_tokens, &max_tokens, e)) return -1;
    r->max_tokens = (int)max_tokens;
    json_t *opts = field(obj, "stream_options");
    if (opts && !json_is_object(opts)) {
        serve_error_set(e, 400, BAD_REQUEST, "'stream_options' must be an object");
        return -1;
    }
    if (parse_sampling(obj, r, e) || parse_stop(obj, r, e) || parse_logprobs(obj, r, e) ||
        get_bool(obj, "stream", &r->stream, e) || get_bool(obj, "memory", &r->memory, e) ||
        (opts && get_bool(opts, "include_usage", &r->include_usage, e)) ||
        refuse_unsupported(obj, e))
        return -1;
    if (r->memory && r->logprobs) {
        /* A read rolls tokens back and inserts others: the generated tokens
         * are not one sampled sequence. */
        serve_error_set(e, 400, BAD_REQUEST, "'logprobs' cannot be combined with 'memory'");
        return -1;
    }
    return 0;
}

int serve_request_parse(const char *body, size_t len, enum serve_route route,
                        const struct serve_request_limits *lim, struct serve_request *r,
                        struct serve_error *e)
{
    memset(r, 0, sizeof(*r));
    json_error_t jerr;
    /* jansson refuses invalid UTF-8, NUL characters, and integers and reals
     * too large for int64 and double. */
    json_t *obj = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!obj) {
        serve_error_set(e, 400, BAD_REQUEST, "malformed JSON body: line %d column %d: %s",
                        jerr.line, jerr.column, jerr.text);
        return -1;
    }
    int rc = parse_object(obj, route, lim, r, e);
    json_decref(obj);
    if (rc) serve_request_free(r);
    return rc;
}
