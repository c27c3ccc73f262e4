#include "serve_memory.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edit_apply.h"
#include "memllm_read.h"
#include "serve_http_internal.h"
#include "serve_memory_request.h"

#define PREFIX "/v1/memory/"
#define EDITS PREFIX "edits/"
#define ENTITIES PREFIX "entities/"
#define UNDO "/undo"
#define ANNOTATE PREFIX "annotate"
#define JOBS ANNOTATE "/"

/* The batch id of ".../edits/{id}/undo", or NULL. */
static const char *undo_id(const char *url, char id[EDIT_BATCH_ID_MAX])
{
    if (strncmp(url, EDITS, strlen(EDITS))) return NULL;
    const char *start = url + strlen(EDITS);
    const char *end = strstr(start, UNDO);
    size_t n = end ? (size_t)(end - start) : 0;
    if (!end || strcmp(end, UNDO) || n == 0 || n >= EDIT_BATCH_ID_MAX || memchr(start, '/', n))
        return NULL;
    memcpy(id, start, n);
    id[n] = 0;
    return id;
}

int serve_memory_route_writes(const char *url, const char *method)
{
    char id[EDIT_BATCH_ID_MAX];
    if (!strcmp(url, PREFIX "query") || !strcmp(url, PREFIX "stats") ||
        (!strncmp(url, ENTITIES, strlen(ENTITIES)) && url[strlen(ENTITIES)]))
        return 0;
    if (!strcmp(url, PREFIX "facts")) return strcmp(method, "GET") != 0;
    if (!strcmp(url, PREFIX "edits") || undo_id(url, id) || !strcmp(url, ANNOTATE)) return 1;
    if (!strncmp(url, JOBS, strlen(JOBS)) && url[strlen(JOBS)]) return 0;
    return -1;
}

/* --- the operations, run on the engine thread ---------------------------------------------- */

/* Each operation's arguments and results. */
struct op {
    struct serve_http *h;
    struct serve_memory_queries queries;
    struct serve_memory_facts facts;
    struct serve_memory_edits edits;
    const char *name; /* an entity's name; an undo's batch id */
    json_t *result;
    int status;                         /* of a failure the operation itself decides (else 500) */
    int (*fn)(void *, struct mm_err *); /* the operation */
    char id[EDIT_BATCH_ID_MAX];
};

static int run_query(void *arg, struct mm_err *err)
{
    struct op *o = arg;
    size_t n = o->queries.n;
    struct mm_answers *a = calloc(n, sizeof(*a));
    if (!a) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    serve_metrics_memory(o->h->c.metrics, 1, 0);
    if (mm_memory_query(o->h->c.memory, o->queries.q, n, o->h->c.query, a, err)) {
        free(a);
        return -1;
    }
    json_t *results = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *answers = json_array();
        for (size_t k = 0; k < a[i].n; k++)
            json_array_append_new(answers, memllm_answer_json(&a[i].a[k]));
        json_array_append_new(
            results, json_pack("{s:s, s:o}", "query", o->queries.items[i], "answers", answers));
    }
    mm_answers_free(a, n);
    free(a);
    o->result = json_pack("{s:o}", "results", results);
    return 0;
}

static int run_write(void *arg, struct mm_err *err)
{
    struct op *o = arg;
    struct mm_write_report r = {0};
    serve_metrics_memory(o->h->c.metrics, 0, 1);
    if (mm_memory_write(o->h->c.memory, o->facts.f, o->facts.n, NULL, 0, &r, err)) return -1;
    o->result =
        json_pack("{s:I, s:I, s:I, s:I, s:I}", "facts_added", (json_int_t)r.facts_added,
                  "facts_existing", (json_int_t)r.facts_existing, "provenance_added",
                  (json_int_t)r.provenance_added, "entities_added", (json_int_t)r.entities_added,
                  "relations_added", (json_int_t)r.relations_added);
    return 0;
}

static int run_delete(void *arg, struct mm_err *err)
{
    struct op *o = arg;
    uint64_t deleted = 0;
    serve_metrics_memory(o->h->c.metrics, 0, 1);
    if (mm_memory_delete(o->h->c.memory, o->facts.f, o->facts.n, &deleted, err)) return -1;
    o->result = json_pack("{s:I}", "deleted", (json_int_t)deleted);
    return 0;
}

static int run_replace(void *arg, struct mm_err *err)
{
    struct op *o = arg;
    uint64_t removed = 0;
    for (size_t i = 0; i < o->facts.n; i++) {
        uint64_t r = 0;
        serve_metrics_memory(o->h->c.metrics, 0, 1);
        if (mm_memory_replace(o->h->c.memory, &o->facts.f[i], &r, err)) {
            mm_err_prefix(err, "facts[%zu] (the ones before it are replaced)", i);
            return -1;
        }
        removed += r;
    }
    o->result = json_pack("{s:I}", "removed", (json_int_t)removed);
    return 0;
}

/* The most facts an entity lookup lists per entity (its home shard's scan
 * stops there; "facts_truncated" says so). */
#define ENTITY_FACTS_MAX 500

struct entity_facts {
    json_t *list;
    int truncated;
};

/* One stored copy keyed by the entity, as the fact it is a copy of. */
static int entity_fact(void *ctx, const struct mm_copy *c)
{
    struct entity_facts *f = ctx;
    if (json_array_size(f->list) == ENTITY_FACTS_MAX) {
        f->truncated = 1;
        return 1;
    }
    json_t *prov = json_array();
    for (size_t i = 0; i < c->nprov; i++)
        json_array_append_new(prov, json_pack("{s:s, s:i, s:I}", "source", c->prov[i].source,
                                              "sentence", c->prov[i].sentence, "time_ms",
                                              (json_int_t)c->prov[i].time_ms));
    const char *s = c->reverse ? c->other : c->key, *o = c->reverse ? c->key : c->other;
    json_array_append_new(f->list,
                          json_pack("{s:s, s:s, s:s, s:s, s:o}", "subject", s, "relation",
                                    c->relation, "object", o, "as",
                                    c->reverse ? "object" : "subject", "provenance", prov));
    return 0;
}

static int run_entity(void *arg, struct mm_err *err)
{
    struct op *o = arg;
    struct mm_entity_record *r;
    size_t n;
    serve_metrics_memory(o->h->c.metrics, 1, 0);
    if (mm_memory_get_entity(o->h->c.memory, o->name, &r, &n, err)) return -1;
    json_t *list = json_array();
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "%016llx", (unsigned long long)r[i].id);
        json_t *aliases = json_array();
        for (size_t k = 0; k < r[i].naliases; k++)
            json_array_append_new(aliases, json_string(r[i].aliases[k]));
        struct entity_facts f = {.list = json_array()};
        if (mm_memory_entity_copies(o->h->c.memory, r[i].id, entity_fact, &f, err) < 0) {
            json_decref(f.list);
            json_decref(aliases);
            json_decref(list);
            mm_entity_records_free(r, n);
            return -1;
        }
        json_array_append_new(list, json_pack("{s:s, s:s, s:o, s:I, s:I, s:o, s:b}", "id", id,
                                              "text", r[i].text, "aliases", aliases,
                                              "facts_as_subject", (json_int_t)r[i].forward_copies,
                                              "facts_as_object", (json_int_t)r[i].reverse_copies,
                                              "facts", f.list, "facts_truncated", f.truncated));
    }
    mm_entity_records_free(r, n);
    if (n == 0) {
        json_decref(list);
        o->status = 404;
        mm_err_set(err, "no entity named '%s'", o->name);
        return -1;
    }
    o->result = json_pack("{s:o}", "entities", list);
    return 0;
}

static int run_stats(void *arg, struct mm_err *err)
{
    struct op *o = arg;
    struct mm_memory_stats st;
    serve_metrics_memory(o->h->c.metrics, 1, 0);
    if (mm_memory_stats(o->h->c.memory, &st, err)) return -1;
    o->result =
        json_pack("{s:i, s:s, s:i, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "shards", (int)st.shards,
                  "embedder", st.embedder, "dim", st.dim, "entities", (json_int_t)st.entities,
                  "names", (json_int_t)st.names, "relations", (json_int_t)st.relations, "triples",
                  (json_int_t)st.triples, "reverse_copies", (json_int_t)st.reverse_copies,
                  "provenance", (json_int_t)st.provenance, "sst_bytes", (json_int_t)st.sst_bytes);
    return 0;
}

static int run_edits(void *arg, struct mm_err *err)
{
    struct op *o = arg;
    struct edit_counts c = {0};
    serve_metrics_memory(o->h->c.metrics, 0, 1);
    if (edit_apply(o->h->c.memory, o->h->c.memory_dir, "POST /v1/memory/edits", o->edits.e,
                   o->edits.n, o->id, &c, err)) {
        if (o->id[0])
            mm_err_prefix(err,
                          "batch %s stopped part way; POST /v1/memory/edits/%s/undo "
                          "restores the memory",
                          o->id, o->id);
        return -1;
    }
    o->result = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "id", o->id, "added",
                          (json_int_t)c.added, "existing", (json_int_t)c.existing, "replaced",
                          (json_int_t)c.replaced, "removed", (json_int_t)c.removed, "deleted",
                          (json_int_t)c.deleted, "not_found", (json_int_t)c.not_found);
    return 0;
}

static int run_undo(void *arg, struct mm_err *err)
{
    struct op *o = arg;
    size_t restored = 0, removed = 0;
    serve_metrics_memory(o->h->c.metrics, 0, 1);
    if (edit_apply_undo(o->h->c.memory, o->h->c.memory_dir, o->name, &restored, &removed, err)) {
        /* An unknown batch or one undone already: the client's to fix. */
        o->status = 409;
        return -1;
    }
    o->result = json_pack("{s:s, s:I, s:I}", "id", o->name, "restored", (json_int_t)restored,
                          "removed", (json_int_t)removed);
    return 0;
}

/* Runs the operation on the engine thread and, when a shard's storage made
 * it fail, says so in the status, asked right there (the next operation
 * may change the answer): a full disk is 507 (the client may retry after
 * space is freed), a failed file system 503. Reads still answer either way;
 * that shard refuses writes until the memory is opened again. */
static int run_op(void *arg, struct mm_err *err)
{
    struct op *o = arg;
    int rc = o->fn(o, err);
    if (rc && !o->status) {
        enum mm_memory_fault f = mm_memory_fault(o->h->c.memory);
        o->status = f == MM_FAULT_NO_SPACE ? 507 : f == MM_FAULT_IO ? 503 : 0;
    }
    return rc;
}

static const char *error_type(int status)
{
    switch (status) {
    case 404:
        return "not_found_error";
    case 409:
        return "invalid_request_error";
    case 507:
        return "insufficient_storage_error";
    case 503:
        return "service_unavailable_error";
    default:
        return "server_error";
    }
}

/* --- the HTTP side -------------------------------------------------------------------------- */

static enum MHD_Result run(struct serve_http *h, struct MHD_Connection *c, struct op *o,
                           int (*fn)(void *, struct mm_err *))
{
    o->fn = fn;
    struct serve_memop m = {.run = run_op, .arg = o};
    enum MHD_Result rc;
    if (serve_queue_memop(h->c.q, &m))
        rc = serve_fail(c, 503, "server_error", m.err.msg);
    else if (m.rc)
        rc = serve_fail(c, o->status ? o->status : 500, error_type(o->status), m.err.msg);
    else
        rc = serve_send_json(c, MHD_HTTP_OK, o->result, NULL);
    if (m.rc) json_decref(o->result);
    serve_memory_queries_free(&o->queries);
    serve_memory_facts_free(&o->facts);
    serve_memory_edits_free(&o->edits);
    return rc;
}

/* POST /v1/memory/annotate: the job is queued (202) and runs in the
 * background; GET /v1/memory/annotate/{id} follows it. */
static enum MHD_Result annotate(struct serve_http *h, struct MHD_Connection *c, struct conn *cn)
{
    struct mm_err err;
    int status;
    struct serve_annotate_job *j = serve_annotate_parse(h->c.annotator, cn->body ? cn->body : "",
                                                        cn->len, h->c.model_name, &status, &err);
    if (!j)
        return serve_fail(c, status,
                          status == 404   ? "not_found_error"
                          : status == 400 ? "invalid_request_error"
                                          : "server_error",
                          err.msg);
    struct serve_memop m = {.run = serve_annotate_add, .arg = j};
    if (serve_queue_memop(h->c.q, &m)) {
        serve_annotate_job_free(j);
        return serve_fail(c, 503, "server_error", m.err.msg);
    }
    /* The registry owns the job now; its id and size do not change. */
    return serve_send_json(c, 202,
                           json_pack("{s:s, s:s, s:i, s:i}", "id", j->id, "status", "queued",
                                     "documents", j->n_docs, "sentences", j->n_sentences),
                           NULL);
}

enum MHD_Result serve_memory(struct serve_http *h, struct MHD_Connection *c, struct conn *cn,
                             const char *url, const char *method)
{
    if (!h->c.memory)
        return serve_fail(c, 404, "not_found_error",
                          "no memory: start memllm serve with --memory DIR for /v1/memory/");
    struct op o = {.h = h};
    struct serve_error e;
    const char *body = cn->body ? cn->body : "";
    char id[EDIT_BATCH_ID_MAX];
    int get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    if (!strcmp(url, PREFIX "query")) {
        if (!post) return serve_fail(c, 405, "invalid_request_error", "this route takes POST");
        if (serve_memory_parse_queries(body, cn->len, &o.queries, &e))
            return serve_send_error(c, &e);
        return run(h, c, &o, run_query);
    }
    if (!strcmp(url, PREFIX "facts")) {
        int del = !strcmp(method, "DELETE"), put = !strcmp(method, "PUT");
        if (!post && !del && !put)
            return serve_fail(c, 405, "invalid_request_error",
                              "this route takes POST (write), PUT (replace) or DELETE");
        if (serve_memory_parse_facts(body, cn->len, &o.facts, &e)) return serve_send_error(c, &e);
        return run(h, c, &o, post ? run_write : del ? run_delete : run_replace);
    }
    if (!strncmp(url, ENTITIES, strlen(ENTITIES))) {
        if (!get) return serve_fail(c, 405, "invalid_request_error", "this route takes GET");
        o.name = url + strlen(ENTITIES);
        return run(h, c, &o, run_entity);
    }
    if (!strcmp(url, PREFIX "stats")) {
        if (!get) return serve_fail(c, 405, "invalid_request_error", "this route takes GET");
        return run(h, c, &o, run_stats);
    }
    if (!strcmp(url, PREFIX "edits")) {
        if (!post) return serve_fail(c, 405, "invalid_request_error", "this route takes POST");
        if (serve_memory_parse_edits(body, cn->len, &o.edits, &e)) return serve_send_error(c, &e);
        return run(h, c, &o, run_edits);
    }
    if (!strcmp(url, ANNOTATE)) {
        if (!post) return serve_fail(c, 405, "invalid_request_error", "this route takes POST");
        return annotate(h, c, cn);
    }
    if (!strncmp(url, JOBS, strlen(JOBS))) {
        if (!get) return serve_fail(c, 405, "invalid_request_error", "this route takes GET");
        json_t *p = serve_annotate_progress(h->c.annotator, url + strlen(JOBS));
        if (!p) return serve_fail(c, 404, "not_found_error", "no annotate job with this id");
        return serve_send_json(c, MHD_HTTP_OK, p, NULL);
    }
    if ((o.name = undo_id(url, id))) {
        if (!post) return serve_fail(c, 405, "invalid_request_error", "this route takes POST");
        return run(h, c, &o, run_undo);
    }
    return serve_fail(c, 404, "not_found_error", "no such route");
}
