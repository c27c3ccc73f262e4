/* memllm serve's request parser (coordinator/serve/requests/serve_request.c): every
 * bad body is refused with a 4xx status, an OpenAI error type and a message
 * naming the field; good bodies give the fields the engine runs with. */
#include <string.h>

#include "check.h"
#include "serve_request.h"

static const struct serve_request_limits lim = {.max_tokens = 1000};

static void refused(enum serve_route route, const char *body, size_t len, const char *names)
{
    struct serve_request r;
    struct serve_error e;
    int rc = serve_request_parse(body, len, route, &lim, &r, &e);
    CHECKF(rc == -1, "accepted: %.*s", (int)len, body);
    if (rc == 0) {
        serve_request_free(&r);
        return;
    }
    CHECKF(e.status >= 400 && e.status < 500 && e.type && strstr(e.message, names),
           "%.*s: status %d, '%s' (should name %s)", (int)len, body, e.status, e.message, names);
}

#define REFUSED(route, body, names) refused(route, body, strlen(body), names)

static void bad_bodies(void)
{
    REFUSED(SERVE_COMPLETIONS, "", "malformed JSON");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\"", "malformed JSON");
    REFUSED(SERVE_COMPLETIONS, "[1, 2]", "JSON object");
    REFUSED(SERVE_COMPLETIONS, "{}", "'prompt'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": 3}", "'prompt'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"\"}", "'prompt'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": [\"a\", \"b\"]}", "'prompt'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"prompt\": \"b\"}", "malformed JSON");
    /* invalid UTF-8 and a NUL character in a string */
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"\xff\xfe\"}", "malformed JSON");
    refused(SERVE_COMPLETIONS, "{\"prompt\": \"a\\u0000b\"}", 22, "malformed JSON");
    /* numbers too large for int64 or double, and out of range */
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"max_tokens\": 99999999999999999999999}",
            "malformed JSON");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"temperature\": 1e999}", "malformed JSON");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"max_tokens\": 1001}", "'max_tokens'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"max_tokens\": 0}", "'max_tokens'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"max_tokens\": 1.5}", "'max_tokens'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"max_tokens\": \"5\"}", "'max_tokens'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"temperature\": -1}", "'temperature'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"top_p\": 0}", "'top_p'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"top_k\": -1}", "'top_k'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"seed\": \"x\"}", "'seed'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"n\": 2}", "'n'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"stream\": 1}", "'stream'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"stop\": 5}", "'stop'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"stop\": [\"a\", \"\"]}", "'stop'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"stop\": [\"a\",\"b\",\"c\",\"d\",\"e\"]}",
            "'stop'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"logprobs\": 6}", "'logprobs'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"model\": 1}", "'model'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"echo\": true}", "'echo'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"presence_penalty\": 0.5}",
            "'presence_penalty'");
    REFUSED(SERVE_COMPLETIONS, "{\"prompt\": \"a\", \"memory\": true, \"logprobs\": 1}",
            "'memory'");
    REFUSED(SERVE_CHAT, "{\"messages\": []}", "'messages'");
    REFUSED(SERVE_CHAT, "{\"messages\": \"hi\"}", "'messages'");
    REFUSED(SERVE_CHAT, "{\"messages\": [{\"content\": \"hi\"}]}", "'messages[0]'");
    REFUSED(SERVE_CHAT, "{\"messages\": [{\"role\": \"tool\", \"content\": \"hi\"}]}",
            "'messages[0].role'");
    REFUSED(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": 3}]}",
            "'messages[0].content'");
    REFUSED(SERVE_CHAT,
            "{\"messages\": [{\"role\": \"user\", \"content\": [{\"type\": \"image_url\"}]}]}",
            "'messages[0].content[0]'");
    REFUSED(SERVE_CHAT,
            "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}], \"logprobs\": 1}",
            "'logprobs'");
    REFUSED(SERVE_CHAT,
            "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}], \"top_logprobs\": 2, "
            "\"logprobs\": true}",
            "'top_logprobs'");
    REFUSED(SERVE_CHAT, "{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}], \"tools\": []}",
            "'tools'");
}

static void good_bodies(void)
{
    struct serve_request r;
    struct serve_error e;
    const char *c = "{\"prompt\": [\"Hello\"], \"max_tokens\": 7, \"temperature\": 0, \"stop\": "
                    "\"\\n\", \"seed\": -3, \"logprobs\": 0, \"model\": \"mr\", \"user\": \"x\", "
                    "\"n\": 1, \"frequency_penalty\": 0, \"suffix\": null}";
    REQUIRE(serve_request_parse(c, strlen(c), SERVE_COMPLETIONS, &lim, &r, &e) == 0, "%s",
            e.message);
    CHECK(!strcmp(r.prompt, "Hello") && r.max_tokens == 7 && r.sampling.greedy);
    CHECK(r.n_stop == 1 && !strcmp(r.stop[0], "\n") && r.logprobs && !strcmp(r.model, "mr"));
    CHECK(r.sampling.seed == (uint64_t)-3 && !r.stream && !r.memory);
    serve_request_free(&r);

    const char *chat = "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                       "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, "
                       "{\"type\": \"text\", \"text\": \"b\"}]}], \"stream\": true, "
                       "\"stream_options\": {\"include_usage\": true}, \"memory\": true, "
                       "\"temperature\": 0.7, \"top_p\": 0.9, \"top_k\": 5, "
                       "\"stop\": [\"x\", \"y\"], \"max_completion_tokens\": 9}";
    REQUIRE(serve_request_parse(chat, strlen(chat), SERVE_CHAT, &lim, &r, &e) == 0, "%s",
            e.message);
    CHECK(r.n_messages == 2 && !strcmp(r.messages[1].role, "user"));
    CHECK(!strcmp(r.messages[1].content, "ab") && !strcmp(r.messages[0].content, "Be brief."));
    CHECK(r.stream && r.include_usage && r.memory && r.n_stop == 2 && r.max_tokens == 9);
    CHECK(!r.sampling.greedy && r.sampling.top_k == 5);
    CHECK_NEAR(r.sampling.temperature, 0.7, 1e-6);
    CHECK_NEAR(r.sampling.top_p, 0.9, 1e-6);
    CHECK(r.model == NULL);
    serve_request_free(&r);

    /* OpenAI's defaults: temperature 1, no cut. */
    const char *plain = "{\"prompt\": \"a\"}";
    REQUIRE(serve_request_parse(plain, strlen(plain), SERVE_COMPLETIONS, &lim, &r, &e) == 0, "%s",
            e.message);
    CHECK(!r.sampling.greedy && r.sampling.temperature == 1.0f && r.sampling.top_k == 0);
    CHECK(r.sampling.top_p == 1.0f && r.max_tokens == 0);
    serve_request_free(&r);
}

int main(void)
{
    bad_bodies();
    good_bodies();
    return check_report("test_serve_request");
}
