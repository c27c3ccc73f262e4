#include "serve_annotate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "id_set.h"

void serve_annotator_init(struct serve_annotator *a, struct engine *e, struct mm_memory *m,
                          const char *dir, int base)
{
    memset(a, 0, sizeof(*a));
    pthread_mutex_init(&a->mu, NULL);
    a->tail = &a->jobs;
    a->next_id = 1;
    a->e = e;
    a->m = m;
    a->dir = dir;
    a->base = base;
}

/* The engine thread's part of a job (its writer, its record). */
static void job_close(struct serve_annotate_job *j)
{
    memllm_writer_free(j->w);
    j->w = NULL;
    free(j->mw);
    j->mw = NULL;
    annotate_done_close(&j->done);
}

void serve_annotate_job_free(struct serve_annotate_job *j)
{
    if (!j) return;
    job_close(j);
    for (int i = 0; i < j->n_docs; i++)
        corpus_doc_free(&j->docs[i]);
    free(j->docs);
    free(j->error);
    free(j);
}

void serve_annotator_destroy(struct serve_annotator *a)
{
    while (a->jobs) {
        struct serve_annotate_job *j = a->jobs;
        a->jobs = j->next;
        serve_annotate_job_free(j);
    }
    pthread_mutex_destroy(&a->mu);
}

/* The write model `model` names: as `memllm annotate --use-adapter`, and
 * without a name the only adapter when exactly one is loaded, else the
 * base model. -2: unknown. */
static int pick_adapter(const struct engine *e, const char *model, const char *base_model)
{
    if (!model) return e->n_adapters == 1 && !e->merged ? 0 : -1;
    if (!strcmp(model, base_model)) return -1;
    for (int i = 0; i < e->n_adapters && !e->merged; i++)
        if (!strcmp(model, e->adapter_names[i])) return i;
    return -2;
}

struct serve_annotate_job *serve_annotate_parse(struct serve_annotator *a, const char *body,
                                                size_t len, const char *base_model, int *status,
                                                struct mm_err *err)
{
    *status = 400;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        mm_err_set(err, "malformed JSON body: line %d column %d: %s", jerr.line, jerr.column,
                   jerr.text);
        return NULL;
    }
    json_t *docs = json_object_get(root, "documents"), *model = json_object_get(root, "model");
    json_t *max_tokens = json_object_get(root, "max_tokens");
    struct serve_annotate_job *j = calloc(1, sizeof(*j));
    struct id_set seen = {0};
    int rc = j ? 0 : -1;
    if (j) j->done.fd = -1; /* a refused job must not close fd 0 when freed */
    if (!j) {
        *status = 500;
        mm_err_set(err, "out of memory");
    } else if (!json_is_array(docs) || json_array_size(docs) == 0 ||
               json_array_size(docs) > 100000) {
        mm_err_set(err, "the body must be {\"documents\": [...]} with 1 to 100000 documents");
        rc = -1;
    } else if (model && !json_is_string(model)) {
        mm_err_set(err, "\"model\": expected a string");
        rc = -1;
    } else if (max_tokens && (!json_is_integer(max_tokens) || json_integer_value(max_tokens) < 1 ||
                              json_integer_value(max_tokens) > 4096)) {
        mm_err_set(err, "\"max_tokens\": expected an integer from 1 to 4096");
        rc = -1;
    } else if ((j->adapter = pick_adapter(a->e, json_string_value(model), base_model)) == -2) {
        *status = 404;
        mm_err_set(err, "model '%s' is not served (GET /v1/models lists the models)",
                   json_string_value(model));
        rc = -1;
    } else if (!(j->docs = calloc(json_array_size(docs), sizeof(*j->docs)))) {
        *status = 500;
        mm_err_set(err, "out of memory");
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < json_array_size(docs); i++) {
        char where[48];
        snprintf(where, sizeof(where), "documents[%zu]", i);
        j->n_docs++;
        if (corpus_doc_from_json(&j->docs[i], json_array_get(docs, i), where, err)) {
            rc = -1;
        } else if (id_set_add(&seen, j->docs[i].id) == 0) {
            mm_err_set(err, "%s: document id '%s' appears twice", where, j->docs[i].id);
            rc = -1;
        }
    }
    id_set_free(&seen);
    if (rc == 0 && max_tokens) j->max_tokens = (int)json_integer_value(max_tokens);
    json_decref(root);
    if (rc) {
        serve_annotate_job_free(j);
        return NULL;
    }
    j->owner = a;
    j->status = "queued";
    for (int i = 0; i < j->n_docs; i++)
        j->n_sentences += j->docs[i].n_sentences;
    return j;
}

int serve_annotate_add(void *arg, struct mm_err *err)
{
    (void)err;
    struct serve_annotate_job *j = arg;
    struct serve_annotator *a = j->owner;
    pthread_mutex_lock(&a->mu);
    snprintf(j->id, sizeof(j->id), "annotate-%ld", a->next_id++);
    *a->tail = j;
    a->tail = &j->next;
    pthread_mutex_unlock(&a->mu);
    return 0;
}

json_t *serve_annotate_progress(struct serve_annotator *a, const char *id)
{
    json_t *out = NULL;
    pthread_mutex_lock(&a->mu);
    for (struct serve_annotate_job *j = a->jobs; j && !out; j = j->next)
        if (!strcmp(j->id, id))
            out = json_pack("{s:s, s:s, s:i, s:i, s:i, s:i, s:i, s:I}", "id", j->id, "status",
                            j->status, "documents", j->n_docs, "documents_done", j->docs_done,
                            "documents_skipped", j->docs_skipped, "sentences", j->n_sentences,
                            "sentences_done", j->sentences_done, "facts", (json_int_t)j->facts);
    for (struct serve_annotate_job *j = a->jobs; j && out; j = j->next) {
        if (strcmp(j->id, id)) continue;
        json_object_set_new(out, "usage",
                            json_pack("{s:I, s:I}", "prompt_tokens", (json_int_t)j->prompt_tokens,
                                      "completion_tokens", (json_int_t)j->completion_tokens));
        if (j->error) json_object_set_new(out, "error", json_string(j->error));
    }
    pthread_mutex_unlock(&a->mu);
    return out;
}

/* --- the engine thread ---------------------------------------------------------------------- */

static void set_status(struct serve_annotator *a, struct serve_annotate_job *j, const char *status,
                       const char *error)
{
    pthread_mutex_lock(&a->mu);
    j->status = status;
    if (error && !j->error) j->error = strdup(error);
    pthread_mutex_unlock(&a->mu);
}

static int sentence_done(void *ctx, const struct mw_sentence_result *r, struct mm_err *err)
{
    (void)err;
    struct serve_annotate_job *j = ctx;
    pthread_mutex_lock(&j->owner->mu);
    j->sentences_done++;
    j->facts += r->n_facts;
    pthread_mutex_unlock(&j->owner->mu);
    return 0;
}

static int document_done(void *ctx, const struct mw_document *doc, struct mm_err *err)
{
    struct serve_annotate_job *j = ctx;
    if (annotate_done_record(&j->done, doc->id, err)) return -1;
    pthread_mutex_lock(&j->owner->mu);
    j->docs_done++;
    pthread_mutex_unlock(&j->owner->mu);
    return 0;
}

/* Opens the job's record and queues its documents not finished before. */
static int job_start(struct serve_annotator *a, struct serve_annotate_job *j, struct mm_err *err)
{
    struct mw_options o;
    mw_options_default(&o);
    o.adapter = j->adapter;
    if (j->max_tokens > 0) o.max_tokens = j->max_tokens;
    struct mw_callbacks cb = {.sentence = sentence_done, .document = document_done, .ctx = j};
    if (annotate_done_open(&j->done, a->dir, err)) return -1;
    if (!(j->w = memllm_writer_new(a->e, a->m, &o, &cb, err))) return -1;
    if (!(j->mw = calloc((size_t)j->n_docs, sizeof(*j->mw)))) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    int skipped = 0;
    for (int i = 0; i < j->n_docs; i++) {
        const struct corpus_doc *d = &j->docs[i];
        if (id_set_has(&j->done.ids, d->id)) {
            skipped++;
            continue;
        }
        j->mw[i] = (struct mw_document){d->id, (const char *const *)d->sentences, d->n_sentences};
        if (memllm_writer_add(j->w, &j->mw[i], err)) return -1;
    }
    pthread_mutex_lock(&a->mu);
    j->docs_skipped = skipped;
    j->status = "running";
    pthread_mutex_unlock(&a->mu);
    memllm_writer_requests(j->w, &j->n_reqs);
    return 0;
}

/* The active job has no sentence running nor to run: it ends. */
static void job_end(struct serve_annotator *a, struct serve_annotate_job *j)
{
    const char *status = j->failed ? "failed" : j->next_req < j->n_reqs ? "interrupted" : "done";
    set_status(a, j, status, NULL);
    job_close(j);
    a->active = NULL;
}

const struct gen_request *serve_annotate_next(struct serve_annotator *a, int draining, int *index)
{
    for (;;) {
        struct serve_annotate_job *j = a->active;
        if (!j) {
            if (draining) return NULL;
            pthread_mutex_lock(&a->mu);
            for (j = a->jobs; j && strcmp(j->status, "queued"); j = j->next)
                ;
            pthread_mutex_unlock(&a->mu);
            if (!j) return NULL;
            a->active = j;
            struct mm_err err;
            if (job_start(a, j, &err)) {
                j->failed = 1;
                set_status(a, j, "failed", err.msg);
                job_close(j);
                a->active = NULL;
                continue;
            }
        }
        if (!j->failed && !draining && j->next_req < j->n_reqs) {
            int n;
            const struct gen_request *r = memllm_writer_requests(j->w, &n);
            *index = a->base + j->next_req;
            j->running++;
            return &r[j->next_req++];
        }
        if (j->running > 0) return NULL;
        job_end(a, j);
        if (draining) return NULL;
    }
}

int serve_annotate_owns(const struct serve_annotator *a, int index)
{
    return a && index >= a->base;
}

/* A writer hook failed: the job fails (its other sentences stop at their
 * next token), the engine goes on. */
static void job_failed(struct serve_annotator *a, const struct mm_err *why)
{
    fprintf(stderr, "memllm serve: annotate job %s failed: %s\n", a->active->id, why->msg);
    a->active->failed = 1;
    set_status(a, a->active, "running", why->msg);
}

int serve_annotate_before_sample(struct serve_annotator *a, struct gen_sequence *s,
                                 const float *logits, struct mm_err *err)
{
    (void)err;
    if (a->active->failed) return 0;
    struct mm_err why;
    int index = s->index;
    s->index -= a->base;
    int rc = memllm_write_before_sample(a->active->w, s, logits, &why);
    s->index = index;
    if (rc < 0) job_failed(a, &why);
    return rc < 0 ? 0 : rc;
}

int serve_annotate_on_token(struct serve_annotator *a, struct gen_sequence *s, int32_t token,
                            const char *piece, size_t len, struct mm_err *err)
{
    (void)err;
    if (a->active->failed) {
        s->finish = "error";
        return 0;
    }
    struct mm_err why;
    int index = s->index;
    s->index -= a->base;
    int rc = memllm_write_on_token(a->active->w, s, token, piece, len, &why);
    s->index = index;
    if (rc < 0) {
        job_failed(a, &why);
        s->finish = "error";
    }
    return 0;
}

int serve_annotate_on_finish(struct serve_annotator *a, struct gen_sequence *s, struct mm_err *err)
{
    (void)err;
    struct serve_annotate_job *j = a->active;
    j->running--;
    pthread_mutex_lock(&a->mu);
    j->prompt_tokens += s->req->n_prompt;
    j->completion_tokens += s->n_generated;
    pthread_mutex_unlock(&a->mu);
    if (j->failed) return 0;
    struct mm_err why;
    int index = s->index;
    s->index -= a->base;
    int rc = memllm_write_on_finish(j->w, s, &why);
    s->index = index;
    if (rc < 0) job_failed(a, &why);
    return 0;
}
