/* Bad tokenizer files: each is refused with one line that names the file and
 * the problem; nothing crashes or leaks (this test also runs under ASan). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "tokenizer.h"

/* A small valid BPE tokenizer.json to break in one place at a time. */
#define VOCAB "\"vocab\": {\"a\": 0, \"b\": 1, \"ab\": 2}"
#define MODEL(rest) "{\"model\": {\"type\": \"BPE\", " VOCAB rest "}"
/* The end of a file whose other members come first. */
#define VOCAB_MODEL_TAIL "\"model\": {\"type\": \"BPE\", " VOCAB "}}"

static void expect_error(const char *json, const char *fragment)
{
    struct mm_err err = {{0}};
    struct tokenizer *t = tok_load_json_buffer(json, strlen(json), "bad.json", &err);
    CHECKF(!t, "accepted: %s", json);
    tok_free(t);
    CHECKF(strncmp(err.msg, "bad.json: ", 10) == 0, "message does not name the file: '%s'",
           err.msg);
    CHECKF(strstr(err.msg, fragment), "message '%s' lacks '%s' (input %s)", err.msg, fragment,
           json);
    CHECKF(!strchr(err.msg, '\n'), "message is not one line: '%s'", err.msg);
}

static void json_errors(void)
{
    /* The base case loads, so each failure below is due to its change. */
    struct mm_err err = {{0}};
    const char *ok = MODEL(", \"merges\": [\"a b\"]}");
    struct tokenizer *t = tok_load_json_buffer(ok, strlen(ok), "ok.json", &err);
    CHECKF(t, "%s", err.msg);
    tok_free(t);

    expect_error("", "empty file");
    expect_error("this is not json", "not valid JSON");
    expect_error("{\"model\": {", "not valid JSON");
    expect_error("{\"model\": 1, \"model\": 2}", "duplicate");
    expect_error("[1, 2]", "expected a JSON object, found an array");
    expect_error("{}", "missing 'model'");
    expect_error("{\"model\": 5}", "model: expected an object, found an integer");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": [1]}}",
                 "model.vocab: expected an object");
    expect_error("{\"model\": {\"type\": \"BPE\"}}", "missing 'vocab'");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": \"x\"}}}",
                 "model.vocab['a']: expected an integer id, found a string");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 4000000000}}}",
                 "id 4000000000 is out of range");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": -1}}}", "out of range");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 0}}}",
                 "token id 0 is given twice");
    expect_error("{\"model\": {\"type\": \"BPE\", \"vocab\": {}}}", "vocabulary is empty");
    expect_error(MODEL(", \"merges\": [\"a c\"]}"),
                 "model.merges[0]: token 'c' is not in the vocabulary");
    expect_error(MODEL(", \"merges\": [\"b a\"]}"), "token 'ba' is not in the vocabulary");
    expect_error(MODEL(", \"merges\": [\"ab\"]}"), "not two tokens");
    expect_error(MODEL(", \"merges\": [7]}"), "model.merges[0]: expected");
    expect_error(MODEL(", \"merges\": {}}"), "model.merges: expected an array");
    expect_error(MODEL(", \"byte_fallback\": \"yes\"}"), "model.byte_fallback: expected a boolean");
    expect_error("{\"model\": {\"type\": \"Unigram\", \"vocab\": {\"a\": 0}}}",
                 "unsupported model 'Unigram'");
    expect_error(
        "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}, \"unk_token\": \"[UNK]\"}}",
        "model.unk_token: '[UNK]' is not in the vocabulary");
    expect_error("{\"added_tokens\": [{\"id\": 5, \"content\": 3}], " VOCAB_MODEL_TAIL,
                 "added_tokens[0].content: expected a string");
    expect_error("{\"added_tokens\": [{\"id\": 0, \"content\": \"zz\"}], " VOCAB_MODEL_TAIL,
                 "token id 0 is given twice");
    expect_error("{\"added_tokens\": [{\"id\": 7, \"content\": \"ab\"}], " VOCAB_MODEL_TAIL,
                 "'ab' has id 7 here but 2 in the vocabulary");
    expect_error("{\"added_tokens\": [{\"content\": \"zz\"}], " VOCAB_MODEL_TAIL, "missing 'id'");
    expect_error("{\"normalizer\": {\"type\": \"NFKC\"}, " VOCAB_MODEL_TAIL,
                 "normalizer: unsupported normalizer 'NFKC'");
    expect_error(
        "{\"normalizer\": {\"type\": \"Sequence\", \"normalizers\": [{\"type\": \"Lowercase\"}, "
        "{\"kind\": 1}]}, " VOCAB_MODEL_TAIL,
        "normalizer.normalizers[1]: missing 'type'");
    expect_error("{\"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\w+\"}, "
                 "\"behavior\": \"Isolated\"}, " VOCAB_MODEL_TAIL,
                 "unsupported Split");
    expect_error("{\"pre_tokenizer\": {\"type\": \"Whitespace\"}, " VOCAB_MODEL_TAIL,
                 "unsupported pre-tokenizer 'Whitespace'");
    expect_error("{\"post_processor\": {\"type\": \"TemplateProcessing\", \"single\": "
                 "[{\"SpecialToken\": {\"id\": \"<s>\"}}], \"special_tokens\": {\"<s>\": {\"ids\": "
                 "[99]}}}, " VOCAB_MODEL_TAIL,
                 "not an id in the vocabulary");
    expect_error("{\"decoder\": {\"type\": \"CTC\"}, " VOCAB_MODEL_TAIL,
                 "unsupported decoder 'CTC'");
}

static const char *write_temp(const char *data, size_t len, const char *suffix)
{
    static char path[256];
    snprintf(path, sizeof(path), "/tmp/memllm_tok_%d%s", (int)getpid(), suffix);
    FILE *f = fopen(path, "wb");
    REQUIRE(f, "cannot write %s", path);
    fwrite(data, 1, len, f);
    fclose(f);
    return path;
}

/* A GGUF v3 file with string key/values only (and no tensors). */
static size_t gguf_image(char *buf, const char *const *kv, int n_kv)
{
    size_t n = 0;
    uint32_t u32;
    uint64_t u64;
#define PUT(p, len) (memcpy(buf + n, (p), (len)), n += (len))
    PUT("GGUF", 4);
    u32 = 3;
    PUT(&u32, 4);
    u64 = 0;
    PUT(&u64, 8);
    u64 = (uint64_t)n_kv;
    PUT(&u64, 8);
    for (int i = 0; i < n_kv; i++) {
        u64 = strlen(kv[2 * i]);
        PUT(&u64, 8);
        PUT(kv[2 * i], u64);
        u32 = 8; /* string */
        PUT(&u32, 4);
        u64 = strlen(kv[2 * i + 1]);
        PUT(&u64, 8);
        PUT(kv[2 * i + 1], u64);
    }
#undef PUT
    return n;
}

static void expect_load_error(const char *path, const char *fragment)
{
    struct mm_err err = {{0}};
    struct tokenizer *t = tok_load(path, &err);
    CHECKF(!t, "accepted %s", path);
    tok_free(t);
    CHECKF(strstr(err.msg, path), "message '%s' does not name %s", err.msg, path);
    CHECKF(strstr(err.msg, fragment), "message '%s' lacks '%s'", err.msg, fragment);
}

static void file_errors(void)
{
    expect_load_error("/nonexistent/tokenizer.json", "no such file");
    char dir[] = "/tmp/memllm_tok_dir_XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    expect_load_error(dir, "cannot open");
    rmdir(dir);

    const char *path = write_temp("", 0, ".json");
    expect_load_error(path, "empty file");
    unlink(path);

    char buf[1024];
    const char *no_tokenizer[] = {"general.architecture", "llama"};
    path = write_temp(buf, gguf_image(buf, no_tokenizer, 1), ".gguf");
    expect_load_error(path, "missing key 'tokenizer.ggml.model'");
    unlink(path);

    const char *t5[] = {"tokenizer.ggml.model", "t5"};
    path = write_temp(buf, gguf_image(buf, t5, 1), ".gguf");
    expect_load_error(path, "missing key 'tokenizer.ggml.tokens'");
    unlink(path);

    const char *bad_tokens[] = {"tokenizer.ggml.model", "gpt2", "tokenizer.ggml.tokens", "x"};
    path = write_temp(buf, gguf_image(buf, bad_tokens, 2), ".gguf");
    expect_load_error(path, "'tokenizer.ggml.tokens': expected an array");
    unlink(path);

    path = write_temp("GGUF\x03", 5, ".gguf");
    struct mm_err err = {{0}};
    struct tokenizer *t = tok_load(path, &err);
    CHECKF(!t && strstr(err.msg, path), "truncated GGUF: '%s'", err.msg);
    tok_free(t);
    unlink(path);
}

int main(void)
{
    json_errors();
    file_errors();
    return check_report("test_tokenizer_errors");
}
