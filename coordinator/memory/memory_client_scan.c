/* Reading every stored copy (dump) and checking that every fact has both
 * copies on the right shards (verify, with repair). */
#include "memory_client_internal.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCAN_PAGE 1000
#define ENTITY_PAGE 64

/* The shard's scan cursor is the last triple key it returned: the key's
 * entity id (big-endian), the relation id, the reverse flag and the other
 * end's id (memshard/shard_internal.h, TRIPLE_KEY_LEN). */
#define SCAN_CURSOR_LEN 25

/* Calls fn on every copy of shard j after the key `from` (SCAN_CURSOR_LEN
 * bytes; NULL: from the first), asking `page` copies at a time; returns fn's
 * non-zero value, -1 on error, 0 at the end. */
static int scan_shard(struct mm_memory *m, uint32_t j, const uint8_t *from, uint32_t page,
                      int (*fn)(void *, const struct mm_copy *), void *ctx, struct mm_err *err)
{
    uint32_t S = m->shards;
    Memllm__Request **reqs = calloc(S, sizeof(*reqs));
    Memllm__Response **resp = calloc(S, sizeof(*resp));
    uint8_t cursor[64];
    size_t cursor_len = from ? SCAN_CURSOR_LEN : 0;
    if (from) memcpy(cursor, from, SCAN_CURSOR_LEN);
    int rc = reqs && resp ? 0 : -1;
    if (rc) mm_err_set(err, "out of memory");
    for (int done = 0; rc == 0 && !done;) {
        Memllm__ScanRequest sr = MEMLLM__SCAN_REQUEST__INIT;
        sr.after.data = cursor;
        sr.after.len = cursor_len;
        sr.limit = page;
        Memllm__Request req = MEMLLM__REQUEST__INIT;
        req.command_case = MEMLLM__REQUEST__COMMAND_SCAN;
        req.scan = &sr;
        reqs[j] = &req;
        if (client_round(m, reqs, resp, err) != 0) {
            rc = -1;
            break;
        }
        const Memllm__ScanResult *r = resp[j]->scan;
        done = r->done || r->n_copies == 0;
        if (r->next.len > sizeof(cursor)) {
            mm_err_set(err, "shard %u: scan cursor of %zu bytes", j, r->next.len);
            rc = -1;
        } else {
            /* An empty shard's answer has no cursor: next.data is NULL, and
             * memcpy from NULL is undefined even for 0 bytes (UBSan stops
             * `memllm memory dump` of an empty memory there). */
            if (r->next.len) memcpy(cursor, r->next.data, r->next.len);
            cursor_len = r->next.len;
        }
        for (size_t i = 0; rc == 0 && i < r->n_copies; i++) {
            const Memllm__ScannedCopy *c = r->copies[i];
            struct mm_provenance *prov =
                calloc(c->n_provenance ? c->n_provenance : 1, sizeof(*prov));
            if (!prov) {
                mm_err_set(err, "out of memory");
                rc = -1;
                break;
            }
            for (size_t p = 0; p < c->n_provenance; p++)
                prov[p] =
                    (struct mm_provenance){c->provenance[p]->source, c->provenance[p]->sentence,
                                           c->provenance[p]->time_ms};
            struct mm_copy copy = {
                .shard = j,
                .key_id = c->key_id,
                .relation_id = c->relation_id,
                .other_id = c->other_id,
                .reverse = c->reverse,
                .key = c->key,
                .relation = c->relation,
                .other = c->other,
                .prov = prov,
                .nprov = c->n_provenance,
            };
            rc = fn(ctx, &copy);
            free(prov);
        }
        client_free_responses(m, resp);
    }
    free(reqs);
    free(resp);
    return rc;
}

int mm_memory_scan(struct mm_memory *m, int (*fn)(void *ctx, const struct mm_copy *c), void *ctx,
                   struct mm_err *err)
{
    for (uint32_t j = 0; j < m->shards; j++) {
        int rc = scan_shard(m, j, NULL, SCAN_PAGE, fn, ctx, err);
        if (rc != 0) return rc;
    }
    return 0;
}

struct entity_scan {
    uint64_t id;
    int (*fn)(void *, const struct mm_copy *);
    void *ctx;
    int rc; /* fn's non-zero value, when it stopped the scan */
};

/* Past the entity's copies (the next key's id differs) the scan stops. */
static int entity_copy(void *arg, const struct mm_copy *c)
{
    struct entity_scan *e = arg;
    if (c->key_id != e->id) return 1;
    e->rc = e->fn(e->ctx, c);
    return e->rc != 0;
}

int mm_memory_entity_copies(struct mm_memory *m, uint64_t id,
                            int (*fn)(void *ctx, const struct mm_copy *c), void *ctx,
                            struct mm_err *err)
{
    /* Its copies are keyed by its id first, on its home shard: the scan
     * starts just before the first, (id, 0, 0, 0), which no copy has (the
     * relation id 0 is a hash no text gets in practice, and a copy with it
     * would only be skipped). */
    uint8_t from[SCAN_CURSOR_LEN] = {0};
    for (int b = 0; b < 8; b++)
        from[b] = (uint8_t)(id >> (56 - 8 * b));
    struct entity_scan e = {.id = id, .fn = fn, .ctx = ctx};
    /* Pages of ENTITY_PAGE: most entities' copies fit in one, and a page
     * past them reads little of the next entities'. */
    int rc = scan_shard(m, mm_home_shard(id, m->shards), from, ENTITY_PAGE, entity_copy, &e, err);
    return rc == 1 ? e.rc : rc;
}

/* A fact by ids, in subject-relation-object order, and where its copy is. */
struct fact_ids {
    uint64_t s, r, o;
    uint32_t shard;
};

struct id_list {
    struct fact_ids *f;
    size_t n, cap;
};

static int id_push(struct id_list *l, struct fact_ids f)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 1024;
        struct fact_ids *g = realloc(l->f, cap * sizeof(*g));
        if (!g) return -1;
        l->f = g;
        l->cap = cap;
    }
    l->f[l->n++] = f;
    return 0;
}

static int fact_order(const void *pa, const void *pb)
{
    const struct fact_ids *a = pa, *b = pb;
    if (a->s != b->s) return a->s < b->s ? -1 : 1;
    if (a->r != b->r) return a->r < b->r ? -1 : 1;
    return (a->o > b->o) - (a->o < b->o);
}

struct verify_ctx {
    struct mm_memory *m;
    struct id_list fwd, rev;
    struct mm_verify_report *rep;
    /* Second pass (repair): the facts to fix, sorted, and the requests. */
    struct id_list missing, orphan;
    struct mm_arena ar;
    struct repair_part *part;
    struct mm_err *err;
};

static int collect_ids(void *vctx, const struct mm_copy *c)
{
    struct verify_ctx *v = vctx;
    if (mm_home_shard(c->key_id, v->m->shards) != c->shard) v->rep->misplaced++;
    int rc;
    if (c->reverse) {
        v->rep->reverse++;
        rc = id_push(&v->rev, (struct fact_ids){c->other_id, c->relation_id, c->key_id, c->shard});
    } else {
        v->rep->forward++;
        rc = id_push(&v->fwd, (struct fact_ids){c->key_id, c->relation_id, c->other_id, c->shard});
    }
    if (rc) mm_err_set(v->err, "verify: out of memory");
    return rc;
}

/* The requests that repair builds for one shard. */
struct repair_part {
    Memllm__TripleCopy **copies, **deletes;
    Memllm__Embedded **entities, **relations;
    size_t ncopies, ndeletes, nentities, nrelations;
    size_t cap_copies, cap_deletes, cap_entities, cap_relations;
};

static int grow_push(struct mm_arena *ar, void ***arr, size_t *n, size_t *cap, void *v)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        void **g = mm_arena_array(ar, c, sizeof(*g));
        if (!g) return -1;
        if (*n) memcpy(g, *arr, *n * sizeof(*g));
        *arr = g;
        *cap = c;
    }
    (*arr)[(*n)++] = v;
    return 0;
}

static Memllm__Embedded *embedded(struct verify_ctx *v, const char *text)
{
    Memllm__Embedded *e = mm_arena_alloc(&v->ar, sizeof(*e));
    float *vec = mm_arena_array(&v->ar, (size_t)v->m->emb->dim, sizeof(float));
    char *t = mm_arena_strdup(&v->ar, text);
    if (!e || !vec || !t) return NULL;
    memllm__embedded__init(e);
    e->text = t;
    e->n_vec = (size_t)v->m->emb->dim;
    e->vec = vec;
    const char *texts[1] = {t};
    if (mm_embed(v->m->emb, texts, 1, vec, v->err) != 0) return NULL;
    return e;
}

static int plan_repair(void *vctx, const struct mm_copy *c)
{
    struct verify_ctx *v = vctx;
    struct fact_ids f = c->reverse ? (struct fact_ids){c->other_id, c->relation_id, c->key_id, 0}
                                   : (struct fact_ids){c->key_id, c->relation_id, c->other_id, 0};
    struct id_list *want = c->reverse ? &v->orphan : &v->missing;
    if (want->n == 0 || !bsearch(&f, want->f, want->n, sizeof(*want->f), fact_order)) return 0;
    struct mm_arena *ar = &v->ar;
    if (c->reverse) {
        /* An orphan reverse copy: remove it where it is. */
        struct repair_part *p = &v->part[c->shard];
        Memllm__TripleCopy *d = mm_arena_alloc(ar, sizeof(*d));
        if (!d) goto oom;
        memllm__triple_copy__init(d);
        d->key = mm_arena_strdup(ar, c->key);
        d->relation = mm_arena_strdup(ar, c->relation);
        d->other = mm_arena_strdup(ar, c->other);
        d->reverse = 1;
        if (ar->failed ||
            grow_push(ar, (void ***)&p->deletes, &p->ndeletes, &p->cap_deletes, d) != 0)
            goto oom;
        return 0;
    }
    /* A forward copy without its reverse: write the reverse at home(o) with
     * the forward copy's provenance. */
    uint32_t ho = mm_home_shard(c->other_id, v->m->shards);
    struct repair_part *p = &v->part[ho];
    Memllm__Embedded *o = embedded(v, c->other), *r = embedded(v, c->relation);
    if (!o || !r) goto oom;
    if (grow_push(ar, (void ***)&p->entities, &p->nentities, &p->cap_entities, o) != 0 ||
        grow_push(ar, (void ***)&p->relations, &p->nrelations, &p->cap_relations, r) != 0)
        goto oom;
    for (size_t i = 0; i < c->nprov; i++) {
        Memllm__TripleCopy *w = mm_arena_alloc(ar, sizeof(*w));
        Memllm__Provenance *pv = mm_arena_alloc(ar, sizeof(*pv));
        if (!w || !pv) goto oom;
        memllm__triple_copy__init(w);
        memllm__provenance__init(pv);
        w->key = o->text;
        w->relation = r->text;
        w->other = mm_arena_strdup(ar, c->key);
        w->reverse = 1;
        pv->source = mm_arena_strdup(ar, c->prov[i].source);
        pv->sentence = c->prov[i].sentence;
        pv->time_ms = c->prov[i].time_ms;
        w->provenance = pv;
        if (ar->failed || grow_push(ar, (void ***)&p->copies, &p->ncopies, &p->cap_copies, w) != 0)
            goto oom;
    }
    return 0;
oom:
    mm_err_set(v->err, "verify --repair: out of memory");
    return -1;
}

static int send_repairs(struct verify_ctx *v)
{
    uint32_t S = v->m->shards;
    struct mm_arena *ar = &v->ar;
    Memllm__Request **reqs = mm_arena_array(ar, S, sizeof(*reqs));
    Memllm__Response **resp = calloc(S, sizeof(*resp));
    int rc = reqs && resp ? 0 : -1;
    /* Deletes first, then writes: two rounds, each shard one request. */
    for (int phase = 0; rc == 0 && phase < 2; phase++) {
        for (uint32_t j = 0; j < S && rc == 0; j++) {
            struct repair_part *p = &v->part[j];
            reqs[j] = NULL;
            if (phase == 0 ? p->ndeletes == 0 : p->ncopies == 0) continue;
            Memllm__Request *r = mm_arena_alloc(ar, sizeof(*r));
            if (!r) {
                rc = -1;
                break;
            }
            memllm__request__init(r);
            if (phase == 0) {
                Memllm__DeleteRequest *d = mm_arena_alloc(ar, sizeof(*d));
                if (!d) {
                    rc = -1;
                    break;
                }
                memllm__delete_request__init(d);
                d->copies = p->deletes;
                d->n_copies = p->ndeletes;
                r->command_case = MEMLLM__REQUEST__COMMAND_DELETE;
                r->delete_ = d;
                v->rep->repaired += p->ndeletes;
            } else {
                Memllm__WriteRequest *w = mm_arena_alloc(ar, sizeof(*w));
                if (!w) {
                    rc = -1;
                    break;
                }
                memllm__write_request__init(w);
                w->copies = p->copies;
                w->n_copies = p->ncopies;
                w->entities = p->entities;
                w->n_entities = p->nentities;
                w->relations = p->relations;
                w->n_relations = p->nrelations;
                r->command_case = MEMLLM__REQUEST__COMMAND_WRITE;
                r->write = w;
            }
            reqs[j] = r;
        }
        if (rc != 0) {
            mm_err_set(v->err, "verify --repair: out of memory");
            break;
        }
        rc = client_round(v->m, reqs, resp, v->err);
        if (rc == 0 && phase == 1) v->rep->repaired += v->missing.n;
        if (rc == 0) client_free_responses(v->m, resp);
    }
    free(resp);
    return rc;
}

int mm_memory_verify(struct mm_memory *m, int repair, struct mm_verify_report *rep,
                     struct mm_err *err)
{
    memset(rep, 0, sizeof(*rep));
    struct verify_ctx v = {.m = m, .rep = rep, .err = err};
    int rc = mm_memory_scan(m, collect_ids, &v, err);
    if (rc == 0) {
        qsort(v.fwd.f, v.fwd.n, sizeof(*v.fwd.f), fact_order);
        qsort(v.rev.f, v.rev.n, sizeof(*v.rev.f), fact_order);
        /* Merge the two sorted lists: a fact in one only is a broken pair. */
        size_t a = 0, b = 0;
        while (rc == 0 && (a < v.fwd.n || b < v.rev.n)) {
            int c = a == v.fwd.n ? 1 : b == v.rev.n ? -1 : fact_order(&v.fwd.f[a], &v.rev.f[b]);
            if (c < 0) {
                rep->missing_reverse++;
                rc = id_push(&v.missing, v.fwd.f[a++]);
            } else if (c > 0) {
                rep->orphan_reverse++;
                rc = id_push(&v.orphan, v.rev.f[b++]);
            } else {
                a++;
                b++;
            }
        }
        if (rc != 0) mm_err_set(err, "verify: out of memory");
    }
    if (rc == 0 && repair && (v.missing.n || v.orphan.n)) {
        v.part = calloc(m->shards, sizeof(*v.part));
        if (!v.part) {
            mm_err_set(err, "verify --repair: out of memory");
            rc = -1;
        }
        if (rc == 0) rc = mm_memory_scan(m, plan_repair, &v, err);
        if (rc == 0) rc = send_repairs(&v);
    }
    free(v.fwd.f);
    free(v.rev.f);
    free(v.missing.f);
    free(v.orphan.f);
    free(v.part);
    mm_arena_free(&v.ar);
    return rc;
}
