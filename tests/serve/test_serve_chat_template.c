/* memllm serve's chat templates (coordinator/serve/requests/serve_chat_template.c)
 * render every conversation of tests/fixtures/chat_templates/rendered.json
 * exactly as HF transformers' apply_chat_template rendered it with the
 * model's own Jinja template (tools/make_chat_template_fixtures.py), and
 * refuse the conversations the template refuses. The template is
 * recognised from its text, as memllm serve does with the model's. Also:
 * SmolLM2's GGUF holds a template that is recognised as ChatML with its
 * default system message. */
#include <jansson.h>
#include <string.h>

#include "check.h"
#include "serve_chat_template.h"
#include "tokenizer.h"

static void check_case(json_t *c, size_t index)
{
    const char *name = json_string_value(json_object_get(c, "template_name"));
    struct chat_template t;
    struct mm_err err;
    REQUIRE(chat_template_from_text(&t, json_string_value(json_object_get(c, "template")),
                                    json_string_value(json_object_get(c, "bos")),
                                    json_string_value(json_object_get(c, "eos")),
                                    CHAT_TEMPLATE_NONE, &err) == 0,
            "case %zu (%s): %s", index, name, err.msg);
    struct serve_message m[8];
    json_t *msgs = json_object_get(c, "messages"), *msg;
    size_t i;
    REQUIRE(json_array_size(msgs) <= 8, "case %zu: too many messages", index);
    json_array_foreach(msgs, i, msg)
    {
        m[i].role = (char *)json_string_value(json_object_get(msg, "role"));
        m[i].content = (char *)json_string_value(json_object_get(msg, "content"));
    }
    char *got = chat_template_render(&t, m, (int)json_array_size(msgs), &err);
    const char *want = json_string_value(json_object_get(c, "text"));
    if (want) {
        CHECKF(got && !strcmp(got, want), "case %zu (%s): rendered\n%s\nHF rendered\n%s", index,
               name, got ? got : err.msg, want);
    } else {
        CHECKF(!got, "case %zu (%s): rendered what HF refuses (%s):\n%s", index, name,
               json_string_value(json_object_get(c, "error")), got);
        CHECKF(got || strstr(err.msg, "alternate"), "case %zu: refused saying '%s'", index,
               err.msg);
    }
    free(got);
    chat_template_free(&t);
}

static void check_smollm2_gguf(void)
{
    char path[1024];
    test_path("MEMLLM_MODELS_DIR", "SmolLM2-135M-Instruct.Q4_1.gguf", path, sizeof(path));
    struct mm_err err;
    struct tokenizer *tok = tok_load(path, &err);
    REQUIRE(tok, "%s: %s", path, err.msg);
    struct chat_template t;
    REQUIRE(chat_template_load(&t, path, tok, &err) == 0, "%s", err.msg);
    CHECK(t.kind == CHAT_TEMPLATE_CHATML);
    CHECKF(t.default_system &&
               !strcmp(t.default_system,
                       "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
           "default system message '%s'", t.default_system ? t.default_system : "(none)");
    CHECK(!strcmp(t.end_of_turn, "<|im_end|>"));
    chat_template_free(&t);
    tok_free(tok);
}

int main(void)
{
    char path[1024];
    test_path("MEMLLM_FIXTURES", "chat_templates/rendered.json", path, sizeof(path));
    json_error_t jerr;
    json_t *cases = json_load_file(path, 0, &jerr);
    REQUIRE(json_array_size(cases) > 0, "%s: %s", path, jerr.text);
    size_t i;
    json_t *c;
    json_array_foreach(cases, i, c) check_case(c, i);
    printf("%zu conversations rendered as HF renders them\n", json_array_size(cases));
    json_decref(cases);
    check_smollm2_gguf();
    /* A template of another family is refused, not rendered wrongly. */
    struct chat_template t;
    struct mm_err err;
    CHECK(chat_template_from_text(&t, "{{ '<<SYS>>' }}[INST]", "<s>", "</s>", CHAT_TEMPLATE_NONE,
                                  &err) == -1);
    CHECK(strstr(err.msg, "not recognised") != NULL);
    return check_report("test_serve_chat_template");
}
