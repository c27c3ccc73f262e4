/* The MemLLM write loop on real model files without MemLLM training.
 *
 * Forced output (tiny Mistral fixture): a hook puts scripted answers in the
 * context as if the model had written them; the memory then holds exactly
 * the well-formed facts, each with its (document, sentence) provenance, the
 * malformed items are counted, a document is reported only after its facts
 * are stored, and the prompts are exactly DESIGN.md §2's.
 *
 * Late stopping (SmolLM2-135M, when fetched): a document whose sentence
 * lists items closed by "})" makes "})" the model's top token again and
 * again; the test replays the rule on the scores it observes itself and
 * checks that the writer kept the same cut. */
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "engine.h"
#include "late_stop.h"
#include "memllm_write.h"
#include "memory_client.h"
#include "sampling.h"

static struct engine eng;

/* --- forced output ---------------------------------------------------------------------- */

struct forced {
    struct memllm_writer *w; /* first: writer_token and writer_finish */
    struct mm_memory *m;
    const char *const *script; /* per request; NULL: let the model write */
    int injected[16];
    int docs_done;
    const char *done_id[4];
    int facts_at_done[4]; /* facts with the document's provenance when it was reported */
    int malformed_seen;
};

static int forced_before(void *ctx, struct gen_sequence *s, const float *logits, struct mm_err *err)
{
    struct forced *f = ctx;
    const char *text = f->script[s->index];
    if (text && !f->injected[s->index]) {
        int32_t *ids;
        size_t n;
        REQUIRE(tok_encode(eng.tok, text, strlen(text), 0, 1, &ids, &n, err) == 0, "%s", err->msg);
        REQUIRE(gen_sequence_insert(s, ids, (int)n, text, strlen(text), err) == 0, "%s", err->msg);
        free(ids);
        f->injected[s->index] = 1;
        return 1;
    }
    return memllm_write_before_sample(f->w, s, logits, err);
}

/* The writer's own hooks, for a test whose hook context starts with the
 * writer (struct forced, struct observed). */
static int writer_token(void *ctx, struct gen_sequence *s, int32_t token, const char *piece,
                        size_t len, struct mm_err *err)
{
    struct memllm_writer **w = ctx;
    return memllm_write_on_token(*w, s, token, piece, len, err);
}

static int writer_finish(void *ctx, struct gen_sequence *s, struct mm_err *err)
{
    struct memllm_writer **w = ctx;
    return memllm_write_on_finish(*w, s, err);
}

static int on_sentence(void *ctx, const struct mw_sentence_result *r, struct mm_err *err)
{
    (void)err;
    struct forced *f = ctx;
    f->malformed_seen += r->malformed;
    return 0;
}

struct source_count {
    const char *source;
    int n;
};

static int count_source(void *ctx, const struct mm_copy *c)
{
    struct source_count *sc = ctx;
    int has = 0;
    for (size_t i = 0; i < c->nprov; i++)
        has |= !strcmp(c->prov[i].source, sc->source);
    sc->n += !c->reverse && has;
    return 0;
}

static int on_document(void *ctx, const struct mw_document *doc, struct mm_err *err)
{
    struct forced *f = ctx;
    struct source_count sc = {doc->id, 0};
    REQUIRE(mm_memory_scan(f->m, count_source, &sc, err) == 0, "%s", err->msg);
    f->done_id[f->docs_done] = doc->id;
    f->facts_at_done[f->docs_done++] = sc.n;
    return 0;
}

/* The stored facts as "s>>r>>o\tsource#sentence,..." lines, sorted by key. */
struct dump {
    char lines[32][512];
    int n;
};

static int dump_copy(void *ctx, const struct mm_copy *c)
{
    struct dump *d = ctx;
    if (c->reverse || d->n == 32) return 0;
    char *l = d->lines[d->n++];
    snprintf(l, 512, "%s>>%s>>%s\t", c->key, c->relation, c->other);
    for (size_t i = 0; i < c->nprov; i++)
        snprintf(l + strlen(l), 512 - strlen(l), "%s%s#%d", i ? "," : "", c->prov[i].source,
                 c->prov[i].sentence);
    return 0;
}

static int has_line(const struct dump *d, const char *want)
{
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->lines[i], want)) return 1;
    return 0;
}

static void forced_output(const char *tiny)
{
    struct mm_err err = {{0}};
    struct engine_options eo = {.model_path = tiny, .n_slots = 3};
    REQUIRE(engine_open(&eng, &eo, &err) == 0, "%s", err.msg);
    char dir[] = "/tmp/memllm-write-XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    struct mm_embedder *emb = mm_fallback_embedder_new(&err);
    struct mm_memory *m = mm_memory_open_local(dir, 2, emb, 0, &err);
    REQUIRE(m, "%s", err.msg);

    const char *sents_a[] = {"Wilfried \" Willi \" Schneider ( born 13 March 1963 ) is a racer .",
                             "He is German .", "He won two medals ."};
    const char *sents_b[] = {"Berlin is a city ."};
    struct mw_document docs[] = {{"Willi Schneider", sents_a, 3}, {"Berlin", sents_b, 1}};
    const char *script[] = {
        /* doc A, sentence 0: two facts and a malformed item */
        " Willi Schneider>>date of birth>>13 March 1963;bad item;"
        "Willi Schneider>>country of citizenship>>Germany})",
        /* sentence 1: nothing to write */
        "})",
        /* sentence 2: a fact again (more provenance), a repeat within the
         * sentence, too many and too few separators, an empty item */
        "Willi Schneider>>country of citizenship>>Germany;Willi Schneider>>country of "
        "citizenship>>Germany\n;a>>b>>c>>d;;x>>y})",
        /* doc B: one fact */
        "Berlin>>country>>Germany})",
    };
    struct forced f = {.m = m, .script = script};
    struct mw_options o;
    mw_options_default(&o);
    o.max_tokens = 8;
    struct mw_callbacks cb = {.sentence = on_sentence, .document = on_document, .ctx = &f};
    f.w = memllm_writer_new(&eng, m, &o, &cb, &err);
    REQUIRE(f.w, "%s", err.msg);
    for (int i = 0; i < 2; i++)
        REQUIRE(memllm_writer_add(f.w, &docs[i], &err) == 0, "%s", err.msg);

    /* The prompts are DESIGN.md §2's, with the preceding sentences. */
    int n;
    const struct gen_request *reqs = memllm_writer_requests(f.w, &n);
    REQUIRE(n == 4, "%d requests", n);
    const char *want_prompt =
        "Wilfried \" Willi \" Schneider ( born 13 March 1963 ) is a racer . He is German ."
        "({USER_ST})He won two medals .({USER_END})({MEM_WRITE-->";
    int32_t *ids;
    size_t nids;
    REQUIRE(tok_encode(eng.tok, want_prompt, strlen(want_prompt), tok_add_bos_default(eng.tok), 1,
                       &ids, &nids, &err) == 0,
            "%s", err.msg);
    CHECKF(reqs[2].n_prompt == (int)nids && !memcmp(reqs[2].prompt, ids, nids * sizeof(int32_t)),
           "the prompt of sentence 2 is not '%s'", want_prompt);
    free(ids);
    CHECK(reqs[3].adapter == -1 && reqs[3].sampling.greedy && reqs[3].max_tokens == 8);

    struct scheduler_hooks h = {.before_sample = forced_before,
                                .on_token = writer_token,
                                .on_finish = writer_finish,
                                .ctx = &f};
    REQUIRE(scheduler_run(&eng, reqs, n, 64, &h, &err) == 0, "%s", err.msg);
    memllm_writer_clear(f.w);

    struct dump d = {0};
    REQUIRE(mm_memory_scan(m, dump_copy, &d, &err) == 0, "%s", err.msg);
    CHECKF(d.n == 3, "%d facts stored", d.n);
    CHECK(has_line(&d, "Willi Schneider>>date of birth>>13 March 1963\tWilli Schneider#0"));
    CHECK(has_line(&d, "Willi Schneider>>country of citizenship>>Germany\t"
                       "Willi Schneider#0,Willi Schneider#2"));
    CHECK(has_line(&d, "Berlin>>country>>Germany\tBerlin#0"));
    for (int i = 0; i < d.n; i++)
        printf("stored: %s\n", d.lines[i]);

    const struct mw_stats *st = memllm_writer_stats(f.w);
    CHECKF(st->malformed == 3 && f.malformed_seen == 3, "malformed %lld, seen %d",
           (long long)st->malformed, f.malformed_seen);
    CHECKF(st->facts == 4, "facts %lld", (long long)st->facts);
    CHECK(st->sentences == 4 && st->documents == 2 && st->skipped == 0);
    /* Each document was reported once, after its facts were stored. */
    REQUIRE(f.docs_done == 2, "%d documents reported", f.docs_done);
    for (int i = 0; i < 2; i++) {
        int want = !strcmp(f.done_id[i], "Berlin") ? 1 : 2;
        CHECKF(f.facts_at_done[i] == want, "'%s' reported with %d of its %d facts stored",
               f.done_id[i], f.facts_at_done[i], want);
    }
    CHECK(strcmp(f.done_id[0], f.done_id[1]) != 0);

    memllm_writer_free(f.w);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);
    mm_embedder_free(emb);
    engine_close(&eng);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    REQUIRE(system(cmd) == 0, "cleanup");
}

/* --- late stopping on SmolLM2 ------------------------------------------------------------- */

struct observed {
    struct memllm_writer *w; /* first: writer_token and writer_finish */
    int32_t close[2];
    /* The rule replayed on what the test saw: cut points and their scores. */
    int n_cuts, best, ended;
    double best_score;
    size_t best_at;
    int delay;
    char *written;
};

static int observe_before(void *ctx, struct gen_sequence *s, const float *logits,
                          struct mm_err *err)
{
    struct observed *o = ctx;
    int top = 0;
    for (int i = 1; i < eng.vocab; i++)
        if (logits[i] > logits[top]) top = i;
    if ((top == o->close[0] || top == o->close[1]) && !strstr(s->text, "})") && !o->ended) {
        if (o->n_cuts >= o->delay && o->best <= o->n_cuts - o->delay) {
            o->ended = 1;
        } else {
            double sum = logits_logprob(logits, eng.vocab, top);
            for (int i = 0; i < s->n_generated; i++)
                sum += s->logprobs[i];
            double score = sum / (s->n_generated + 1);
            if (o->n_cuts == 0 || score > o->best_score) {
                o->best = o->n_cuts;
                o->best_score = score;
                o->best_at = s->text_len;
            }
            o->n_cuts++;
        }
    }
    return memllm_write_before_sample(o->w, s, logits, err);
}

static int keep_written(void *ctx, const struct mw_sentence_result *r, struct mm_err *err)
{
    (void)err;
    struct observed *o = ctx;
    o->written = strdup(r->written);
    CHECKF(r->cuts == o->n_cuts, "writer recorded %d cuts, the test saw %d", r->cuts, o->n_cuts);
    return 0;
}

/* One write with late stopping after `delay` cuts; the test replays the
 * rule on the scores it sees and checks the writer's cut. */
static void late_stopping_run(struct mm_memory *m, int delay)
{
    struct mm_err err = {{0}};
    struct observed o = {.delay = delay, .close = {-1, -1}};
    const char *closers[] = {"})", " })"};
    for (int i = 0; i < 2; i++) {
        int32_t *ids;
        size_t n;
        REQUIRE(tok_encode(eng.tok, closers[i], strlen(closers[i]), 0, 1, &ids, &n, &err) == 0,
                "%s", err.msg);
        if (n == 1) o.close[i] = ids[0];
        free(ids);
    }
    REQUIRE(o.close[0] >= 0, "SmolLM2 spells \"})\" with more than one token");
    /* A sentence of closed calls makes "})" the top token again and again. */
    const char *sents[] = {"({MEM_WRITE}) ({MEM_WRITE}) ({MEM_WRITE}) ({MEM_WRITE})"};
    struct mw_document doc = {"calls", sents, 1};
    struct mw_options opt;
    mw_options_default(&opt);
    opt.max_tokens = 40;
    opt.delay = delay;
    struct mw_callbacks cb = {.sentence = keep_written, .ctx = &o};
    o.w = memllm_writer_new(&eng, m, &opt, &cb, &err);
    REQUIRE(o.w, "%s", err.msg);
    REQUIRE(memllm_writer_add(o.w, &doc, &err) == 0, "%s", err.msg);
    int nreq;
    const struct gen_request *reqs = memllm_writer_requests(o.w, &nreq);
    struct scheduler_hooks h = {.before_sample = observe_before,
                                .on_token = writer_token,
                                .on_finish = writer_finish,
                                .ctx = &o};
    REQUIRE(scheduler_run(&eng, reqs, nreq, 256, &h, &err) == 0, "%s", err.msg);
    REQUIRE(o.written, "no sentence result");
    printf("SmolLM2, delay %d: %d cut points, %s; kept '%s'\n", delay, o.n_cuts,
           o.ended ? "the rule ended the write" : "ran to the token limit", o.written);
    CHECKF(o.n_cuts >= 2, "only %d cut points: the sentence no longer exercises late stopping",
           o.n_cuts);
    /* The writer kept the text up to the best cut the test computed. */
    CHECKF(strlen(o.written) == o.best_at, "kept %zu bytes, the best cut is at %zu",
           strlen(o.written), o.best_at);
    free(o.written);
    memllm_writer_clear(o.w);
    memllm_writer_free(o.w);
}

static void late_stopping(const char *smol)
{
    struct mm_err err = {{0}};
    struct engine_options eo = {.model_path = smol, .n_slots = 1};
    REQUIRE(engine_open(&eng, &eo, &err) == 0, "%s", err.msg);
    char dir[] = "/tmp/memllm-write-XXXXXX";
    REQUIRE(mkdtemp(dir), "mkdtemp");
    struct mm_embedder *emb = mm_fallback_embedder_new(&err);
    struct mm_memory *m = mm_memory_open_local(dir, 1, emb, 0, &err);
    REQUIRE(m, "%s", err.msg);
    late_stopping_run(m, 2);
    late_stopping_run(m, LATE_STOP_DEFAULT_DELAY);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);
    mm_embedder_free(emb);
    engine_close(&eng);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    REQUIRE(system(cmd) == 0, "cleanup");
}

int main(void)
{
    char tiny[1024], smol[1024];
    forced_output(test_path("MEMLLM_FIXTURES", "models/tiny-mistral", tiny, sizeof(tiny)));
    test_path("MEMLLM_MODELS_DIR", "SmolLM2-135M-Instruct.Q4_1.gguf", smol, sizeof(smol));
    if (access(smol, R_OK) == 0)
        late_stopping(smol);
    else
        printf("SKIP: SmolLM2 part: %s is absent (run deploy/fetch-models.sh)\n", smol);
    return check_report("test_memllm_write");
}
