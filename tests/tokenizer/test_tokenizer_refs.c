/* Tokenizers against reference ids made by tools/make_tokenizer_refs.py
 * (HF `tokenizers` for tokenizer.json files, llama.cpp for SmolLM2's GGUF)
 * on 1000 Re-DocRED sentences and a set of hand-written texts:
 *   - encoding with the tokenizer's defaults matches, id for id;
 *   - encoding the hand-written texts without BOS and with special tokens
 *     as plain text matches;
 *   - decoding the reference ids gives the text back where the tokenizer is
 *     lossless, and the streaming decoder agrees with the whole-sequence one;
 *   - encoding speed on the whole Re-DocRED text (printed);
 *   - small tokenizers with the pipeline variants the big ones lack
 *     (tokenizer/feat-*.json) match HF on the hand-written texts.
 * MiniLM and SmolLM2 come from $MEMLLM_MODELS_DIR (deploy/fetch-models.sh);
 * without them their part prints SKIP. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"
#include "read_file.h"
#include "tokenizer_fixtures.h"
#include "tokenizer.h"
#include "unicode.h"

struct texts {
    char **s;
    size_t *len;
    size_t n;
};

/* Lines of a file; in sentences.txt, \\ \n \t \r are escapes. */
static struct texts read_lines(const char *path, int unescape)
{
    size_t len;
    char *buf = must_read_file(path, &len);
    struct texts t = {0};
    size_t cap = 0;
    char *p = buf;
    while (p < buf + len) {
        char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(buf + len - p);
        char *s = malloc(n + 1);
        REQUIRE(s, "out of memory");
        memcpy(s, p, n);
        s[n] = 0;
        size_t k = unescape ? fixture_unescape(s, n) : n;
        if (t.n == cap) {
            cap = cap ? cap * 2 : 1024;
            t.s = realloc(t.s, cap * sizeof(*t.s));
            t.len = realloc(t.len, cap * sizeof(*t.len));
        }
        t.s[t.n] = s;
        t.len[t.n++] = k;
        p += n + 1;
    }
    free(buf);
    return t;
}

static void free_texts(struct texts *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->s[i]);
    free(t->s);
    free(t->len);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Compares encodings of texts[first..] with the lines of ids_path. */
static void check_ids(struct tokenizer *t, const char *name, const struct texts *texts,
                      size_t first, const char *ids_path, int add_bos, int parse_special)
{
    struct texts want = read_lines(ids_path, 0);
    CHECKF(want.n == texts->n - first, "%s: %zu reference lines for %zu texts", ids_path, want.n,
           texts->n - first);
    int32_t *ref = malloc(1 << 20);
    size_t same = 0;
    for (size_t i = 0; i < want.n && first + i < texts->n; i++) {
        size_t n_ref = fixture_ids(want.s[i], ref, (1 << 20) / sizeof(*ref));
        int32_t *ids;
        size_t n_ids;
        struct mm_err err = {{0}};
        int rc = tok_encode(t, texts->s[first + i], texts->len[first + i], add_bos, parse_special,
                            &ids, &n_ids, &err);
        CHECKF(rc == 0, "%s", err.msg);
        if (rc) continue;
        int ok = n_ids == n_ref && memcmp(ids, ref, n_ids * sizeof(*ids)) == 0;
        CHECKF(ok, "%s: text %zu '%s': %zu ids, reference %zu", name, first + i,
               texts->s[first + i], n_ids, n_ref);
        if (!ok) {
            size_t k = 0;
            while (k < n_ids && k < n_ref && ids[k] == ref[k])
                k++;
            fprintf(stderr, "  first difference at %zu: %d vs reference %d\n", k,
                    k < n_ids ? ids[k] : -1, k < n_ref ? ref[k] : -1);
        }
        same += ok;
        free(ids);
    }
    printf("%s: %s: %zu/%zu identical\n", name, strrchr(ids_path, '/') + 1, same, want.n);
    free(ref);
    free_texts(&want);
}

/* Decoding the reference ids (less the BOS the tokenizer adds) gives the
 * text back, and the streaming decoder writes the same bytes (a NUL in the
 * text ends tok_decode's string, not the stream). `skip` names texts the
 * tokenizer cannot give back. */
static void check_decode(struct tokenizer *t, const char *name, const struct texts *texts,
                         size_t first, const char *ids_path, int (*skip)(const char *))
{
    struct texts want = read_lines(ids_path, 0);
    int32_t *ref = malloc(1 << 20);
    size_t same = 0, tried = 0;
    size_t room = tok_decoder_max_out(t);
    char *buf = malloc(room);
    for (size_t r = 0; r < want.n && first + r < texts->n; r++) {
        size_t i = first + r;
        if (skip && skip(texts->s[i])) continue;
        size_t n_ref = fixture_ids(want.s[r], ref, (1 << 20) / sizeof(*ref));
        int32_t *ids = ref;
        if (tok_add_bos_default(t) && n_ref && ref[0] == tok_bos(t)) {
            ids++;
            n_ref--;
        }
        struct mm_err err = {{0}};
        char *text = tok_decode(t, ids, n_ref, 0, &err);
        CHECKF(text, "%s", err.msg);
        if (!text) continue;
        int ok = strcmp(text, texts->s[i]) == 0;
        CHECKF(ok, "%s: decode of text %zu: '%s' instead of '%s'", name, i, text, texts->s[i]);
        same += ok;
        tried++;

        struct tok_decoder d;
        tok_decoder_init(&d, t);
        size_t pos = 0;
        int stream_ok = 1;
        for (size_t k = 0; k <= n_ref && stream_ok; k++) {
            int w = k < n_ref ? tok_decoder_push(&d, ids[k], buf, room)
                              : tok_decoder_flush(&d, buf, room);
            stream_ok = w >= 0 && pos + (size_t)w <= texts->len[i] &&
                        memcmp(texts->s[i] + pos, buf, (size_t)w) == 0;
            pos += w > 0 ? (size_t)w : 0;
        }
        CHECKF(stream_ok && pos == texts->len[i], "%s: streaming decode of text %zu differs", name,
               i);
        free(text);
    }
    printf("%s: decode(reference ids) == text for %zu/%zu texts\n", name, same, tried);
    free(buf);
    free(ref);
    free_texts(&want);
}

/* The whole Re-DocRED dev text: sentences joined by spaces, documents by
 * newlines. */
static char *redocred_text(size_t *len)
{
    char path[1024];
    test_path("MEMLLM_DATA", "redocred/dev_revised.json", path, sizeof(path));
    json_error_t jerr;
    json_t *docs = json_load_file(path, 0, &jerr);
    REQUIRE(json_is_array(docs), "%s: %s", path, jerr.text);
    size_t cap = 1 << 22, n = 0;
    char *text = malloc(cap);
    size_t i, j, k;
    json_t *doc, *sent, *word;
    json_array_foreach(docs, i, doc)
    {
        json_array_foreach(json_object_get(doc, "sents"), j, sent)
        {
            json_array_foreach(sent, k, word)
            {
                const char *w = json_string_value(word);
                size_t wl = strlen(w);
                while (n + wl + 2 > cap)
                    text = realloc(text, cap *= 2);
                if (k) text[n++] = ' ';
                memcpy(text + n, w, wl);
                n += wl;
            }
            text[n++] = ' ';
        }
        text[n - 1] = '\n';
    }
    json_decref(docs);
    *len = n;
    return text;
}

static void measure_speed(struct tokenizer *t, const char *name, const char *text, size_t len)
{
    int32_t *ids;
    size_t n_ids;
    struct mm_err err = {{0}};
    double t0 = now_s();
    int rc = tok_encode(t, text, len, 0, 1, &ids, &n_ids, &err);
    double dt = now_s() - t0;
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    printf("%s: whole Re-DocRED dev text (%.2f MB) in one call: %zu tokens in %.3f s = %.0f "
           "tokens/s (%.1f MB/s)\n",
           name, len / 1e6, n_ids, dt, n_ids / dt, len / 1e6 / dt);
    free(ids);
}

/* tiny-mistral's normalizer puts a U+2581 before the text after every added
 * token (as HF does), so the texts holding one do not come back unchanged. */
static int has_added_token(const char *s)
{
    static const char *const added[] = {"({", "})", "-->", "<s>", "</s>", "<unk>"};
    for (size_t i = 0; i < sizeof(added) / sizeof(added[0]); i++)
        if (strstr(s, added[i])) return 1;
    return 0;
}

struct ref_case {
    const char *name;
    const char *env, *path; /* where the tokenizer is */
    int lossless;
    int (*skip_decode)(const char *);
    int extras_only; /* references for the hand-written texts only, no plain ones */
};

static void run_case(const struct ref_case *c, const struct texts *texts, size_t n_redocred,
                     const char *text, size_t text_len)
{
    char path[1024], ids_path[1024], plain_path[1024];
    test_path(c->env, c->path, path, sizeof(path));
    if (!file_exists(path)) {
        printf("SKIP %s: %s is absent (deploy/fetch-models.sh puts it there)\n", c->name, path);
        return;
    }
    snprintf(ids_path, sizeof(ids_path), "%s/tokenizer/%s.ids", getenv("MEMLLM_FIXTURES"), c->name);
    snprintf(plain_path, sizeof(plain_path), "%s/tokenizer/%s.plain.ids", getenv("MEMLLM_FIXTURES"),
             c->name);
    struct mm_err err = {{0}};
    struct tokenizer *t = tok_load(path, &err);
    CHECKF(t, "%s", err.msg);
    if (!t) return;
    size_t first = c->extras_only ? n_redocred : 0;
    check_ids(t, c->name, texts, first, ids_path, tok_add_bos_default(t), 1);
    if (!c->extras_only) check_ids(t, c->name, texts, n_redocred, plain_path, 0, 0);
    if (c->lossless) check_decode(t, c->name, texts, first, ids_path, c->skip_decode);
    if (!c->extras_only) measure_speed(t, c->name, text, text_len);
    tok_free(t);
}

int main(void)
{
    char path[1024];
    struct texts texts =
        read_lines(test_path("MEMLLM_FIXTURES", "tokenizer/sentences.txt", path, sizeof(path)), 1);
    /* The hand-written texts follow the Re-DocRED sentences; the plain
     * references cover them only. */
    test_path("MEMLLM_FIXTURES", "tokenizer/tiny-llama.plain.ids", path, sizeof(path));
    struct texts plain = read_lines(path, 0);
    REQUIRE(plain.n < texts.n, "more plain references than texts");
    size_t n_redocred = texts.n - plain.n;
    free_texts(&plain);
    REQUIRE(n_redocred >= 1000, "only %zu Re-DocRED sentences", n_redocred);

    size_t text_len;
    char *text = redocred_text(&text_len);
    /* HF and llama.cpp have their own Unicode data; rare characters whose
     * category changed between versions can differ. */
    printf("Unicode tables: %s\n", uni_version());

    static const struct ref_case cases[] = {
        {"tiny-mistral", "MEMLLM_FIXTURES", "models/tiny-mistral", 1, has_added_token, 0},
        {"tiny-llama", "MEMLLM_FIXTURES", "models/tiny-llama", 1, NULL, 0},
        {"smollm2", "MEMLLM_MODELS_DIR", "SmolLM2-135M-Instruct.Q4_1.gguf", 1, NULL, 0},
        {"minilm", "MEMLLM_MODELS_DIR", "all-MiniLM-L6-v2/tokenizer.json", 0, NULL, 0},
        /* Small tokenizers for the pipeline variants the others lack. */
        {"feat-metaspace", "MEMLLM_FIXTURES", "tokenizer/feat-metaspace.json", 0, NULL, 1},
        {"feat-digits-bytelevel", "MEMLLM_FIXTURES", "tokenizer/feat-digits-bytelevel.json", 1,
         NULL, 1},
        {"feat-split-prefix", "MEMLLM_FIXTURES", "tokenizer/feat-split-prefix.json", 0, NULL, 1},
        {"feat-wordpiece", "MEMLLM_FIXTURES", "tokenizer/feat-wordpiece.json", 0, NULL, 1},
        {"feat-subword-affixes", "MEMLLM_FIXTURES", "tokenizer/feat-subword-affixes.json", 0, NULL,
         1},
        /* GGUF byte-level BPE with each supported tokenizer.ggml.pre. */
        {"gguf-default", "MEMLLM_FIXTURES", "tokenizer/gguf-default.gguf", 1, NULL, 1},
        {"gguf-gpt-2", "MEMLLM_FIXTURES", "tokenizer/gguf-gpt-2.gguf", 1, NULL, 1},
        {"gguf-smollm", "MEMLLM_FIXTURES", "tokenizer/gguf-smollm.gguf", 1, NULL, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i], &texts, n_redocred, text, text_len);

    free(text);
    free_texts(&texts);
    return check_report("test_tokenizer_refs");
}
