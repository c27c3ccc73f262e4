/* Writes, deletes and replaces: each fact becomes a forward copy at home(s)
 * and a reverse copy at home(o), grouped into one request per shard. */
#include "memory_client_internal.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A distinct text of the call (entity or relation), with its embedding. */
struct text_slot {
    const char *text;
    uint64_t id;
    Memllm__Embedded *msg; /* arena; vec points into the embedding array */
};

struct text_set {
    struct text_slot *s;
    size_t n, cap;
    uint32_t *index; /* hash of id -> 1 + slot; 0: free */
    size_t mask;
};

static size_t text_set_home(const struct text_set *set, uint64_t id)
{
    return (size_t)(id ^ id >> 31) & set->mask;
}

/* Index of the text's id in the set, adding it when new; -1 when OOM. */
static long text_set_add(struct text_set *set, const char *text, uint64_t id)
{
    size_t i = 0;
    if (set->index) {
        for (i = text_set_home(set, id); set->index[i]; i = (i + 1) & set->mask)
            if (set->s[set->index[i] - 1].id == id) return (long)set->index[i] - 1;
    }
    if (set->n == set->cap) {
        size_t cap = set->cap ? set->cap * 2 : 64;
        struct text_slot *s = realloc(set->s, cap * sizeof(*s));
        if (!s) return -1;
        set->s = s;
        set->cap = cap;
        /* the index stays at most half full */
        uint32_t *index = calloc(2 * cap, sizeof(*index));
        if (!index) return -1;
        free(set->index);
        set->index = index;
        set->mask = 2 * cap - 1;
        for (size_t k = 0; k < set->n; k++) {
            size_t j = text_set_home(set, set->s[k].id);
            while (set->index[j])
                j = (j + 1) & set->mask;
            set->index[j] = (uint32_t)(k + 1);
        }
        for (i = text_set_home(set, id); set->index[i]; i = (i + 1) & set->mask)
            ;
    }
    set->s[set->n] = (struct text_slot){.text = text, .id = id};
    set->index[i] = (uint32_t)(set->n + 1);
    return (long)set->n++;
}

static void text_set_free(struct text_set *set)
{
    free(set->s);
    free(set->index);
}

/* A value for the ids in mm_memory.stored (the map needs a non-NULL one). */
static const char stored_marker = 1;

/* Embeds the texts of the set into arena messages, but (with skip_stored)
 * those the memory holds already: their msg stays NULL. */
static float *embed_set(struct mm_memory *m, struct text_set *set, int skip_stored,
                        struct mm_arena *ar, struct mm_err *err)
{
    const char **texts = calloc(set->n ? set->n : 1, sizeof(*texts));
    size_t *which = malloc((set->n ? set->n : 1) * sizeof(*which));
    if (!texts || !which) {
        free(texts);
        free(which);
        mm_err_set(err, "out of memory");
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < set->n; i++)
        if (!skip_stored || !id_map_find(&m->stored, set->s[i].id)) {
            texts[k] = set->s[i].text;
            which[k++] = i;
        }
    float *vecs = client_embed(m, texts, k, err);
    free(texts);
    if (!vecs) {
        free(which);
        return NULL;
    }
    for (size_t j = 0; j < k; j++) {
        Memllm__Embedded *e = mm_arena_alloc(ar, sizeof(*e));
        if (!e) break;
        memllm__embedded__init(e);
        e->text = (char *)set->s[which[j]].text;
        e->n_vec = (size_t)m->emb->dim;
        e->vec = vecs + j * (size_t)m->emb->dim;
        set->s[which[j]].msg = e;
    }
    free(which);
    if (ar->failed) {
        free(vecs);
        mm_err_set(err, "out of memory");
        return NULL;
    }
    return vecs;
}

/* A growable array of message pointers in the arena. */
struct ptr_list {
    void **p;
    size_t n, cap;
};

static int ptr_push(struct ptr_list *l, struct mm_arena *ar, void *v)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void **p = mm_arena_array(ar, cap, sizeof(*p));
        if (!p) return -1;
        if (l->n) memcpy(p, l->p, l->n * sizeof(*p));
        l->p = p;
        l->cap = cap;
    }
    l->p[l->n++] = v;
    return 0;
}

/* One shard's part of a write being assembled. */
struct shard_part {
    struct ptr_list entities, copies, aliases, clears;
    unsigned char *has_entity; /* by entity slot */
};

struct write_plan {
    struct mm_memory *m;
    struct mm_arena ar;
    struct text_set entities, relations;
    float *entity_vecs, *relation_vecs;
    struct shard_part *part; /* S */
    int64_t now_ms;
    int skip_stored; /* neither embed nor ship what m->stored holds */
};

static void plan_free(struct write_plan *p)
{
    for (uint32_t j = 0; p->part && j < p->m->shards; j++)
        free(p->part[j].has_entity);
    free(p->part);
    text_set_free(&p->entities);
    text_set_free(&p->relations);
    free(p->entity_vecs);
    free(p->relation_vecs);
    mm_arena_free(&p->ar);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Checks a text and registers it in a set; *slot receives its index. */
static int add_text(struct text_set *set, const char *what, size_t i, const char *text, long *slot,
                    struct mm_err *err)
{
    if (mm_text_check(what, text, err) != 0) {
        /* Labelled again with its index: a write has thousands of texts,
         * formatted only when one is refused. */
        char label[96];
        snprintf(label, sizeof(label), "%s of fact %zu", what, i);
        mm_text_check(label, text, err);
        return -1;
    }
    uint64_t id;
    if (mm_text_id_of(text, &id, err) != 0) return -1;
    *slot = text_set_add(set, text, id);
    if (*slot < 0) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    return 0;
}

static int plan_init(struct write_plan *p, struct mm_memory *m)
{
    memset(p, 0, sizeof(*p));
    p->m = m;
    p->now_ms = wall_ms();
    p->part = calloc(m->shards, sizeof(*p->part));
    return p->part ? 0 : -1;
}

/* Embeds the plan's texts and gives each shard room to mark its entities. */
static int plan_embed(struct write_plan *p, struct mm_err *err)
{
    p->entity_vecs = embed_set(p->m, &p->entities, p->skip_stored, &p->ar, err);
    if (!p->entity_vecs) return -1;
    p->relation_vecs = embed_set(p->m, &p->relations, p->skip_stored, &p->ar, err);
    if (!p->relation_vecs) return -1;
    for (uint32_t j = 0; j < p->m->shards; j++) {
        p->part[j].has_entity = calloc(p->entities.n ? p->entities.n : 1, 1);
        if (!p->part[j].has_entity) {
            mm_err_set(err, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* Ships an entity's embedding with the part of its home shard (once), when
 * it has one (see embed_set). */
static int need_entity(struct write_plan *p, long slot)
{
    uint32_t j = mm_home_shard(p->entities.s[slot].id, p->m->shards);
    if (!p->entities.s[slot].msg || p->part[j].has_entity[slot]) return 0;
    p->part[j].has_entity[slot] = 1;
    return ptr_push(&p->part[j].entities, &p->ar, p->entities.s[slot].msg);
}

static Memllm__TripleCopy *new_copy(struct write_plan *p, const char *key, const char *rel,
                                    const char *other, int reverse, const struct mm_source *src)
{
    Memllm__TripleCopy *c = mm_arena_alloc(&p->ar, sizeof(*c));
    Memllm__Provenance *pv = mm_arena_alloc(&p->ar, sizeof(*pv));
    if (!c || !pv) return NULL;
    memllm__triple_copy__init(c);
    memllm__provenance__init(pv);
    c->key = (char *)key;
    c->relation = (char *)rel;
    c->other = (char *)other;
    c->reverse = reverse;
    if (src) {
        pv->source = (char *)src->source;
        pv->sentence = src->sentence;
        pv->time_ms = src->time_ms ? src->time_ms : p->now_ms;
        c->provenance = pv;
    }
    return c;
}

/* Adds both copies of fact (slots s, r, o) to the parts. */
static int plan_fact(struct write_plan *p, long s, long r, long o, const struct mm_source *src)
{
    const struct text_slot *S = &p->entities.s[s], *O = &p->entities.s[o];
    const char *rel = p->relations.s[r].text;
    uint32_t hs = mm_home_shard(S->id, p->m->shards), ho = mm_home_shard(O->id, p->m->shards);
    Memllm__TripleCopy *fwd = new_copy(p, S->text, rel, O->text, 0, src);
    Memllm__TripleCopy *rev = new_copy(p, O->text, rel, S->text, 1, src);
    if (!fwd || !rev || need_entity(p, s) != 0 || need_entity(p, o) != 0 ||
        ptr_push(&p->part[hs].copies, &p->ar, fwd) != 0 ||
        ptr_push(&p->part[ho].copies, &p->ar, rev) != 0)
        return -1;
    return 0;
}

/* Builds one WriteRequest per shard (every shard gets the relation types)
 * and runs the round. */
static int plan_send(struct write_plan *p, Memllm__Response **resp, struct mm_err *err)
{
    uint32_t S = p->m->shards;
    Memllm__Request **reqs = mm_arena_array(&p->ar, S, sizeof(*reqs));
    Memllm__Embedded **rels = mm_arena_array(&p->ar, p->relations.n, sizeof(*rels));
    size_t nrels = 0;
    for (size_t i = 0; rels && i < p->relations.n; i++)
        if (p->relations.s[i].msg) rels[nrels++] = p->relations.s[i].msg;
    for (uint32_t j = 0; reqs && j < S; j++) {
        Memllm__Request *r = mm_arena_alloc(&p->ar, sizeof(*r));
        Memllm__WriteRequest *w = mm_arena_alloc(&p->ar, sizeof(*w));
        if (!r || !w) break;
        memllm__request__init(r);
        memllm__write_request__init(w);
        const struct shard_part *part = &p->part[j];
        w->entities = (Memllm__Embedded **)part->entities.p;
        w->n_entities = part->entities.n;
        w->relations = rels;
        w->n_relations = nrels;
        w->copies = (Memllm__TripleCopy **)part->copies.p;
        w->n_copies = part->copies.n;
        w->aliases = (Memllm__Alias **)part->aliases.p;
        w->n_aliases = part->aliases.n;
        w->clears = (Memllm__Clear **)part->clears.p;
        w->n_clears = part->clears.n;
        r->command_case = MEMLLM__REQUEST__COMMAND_WRITE;
        r->write = w;
        reqs[j] = r;
    }
    if (p->ar.failed || !reqs) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    return client_round(p->m, reqs, resp, err);
}

/* The texts of a write the memory now holds. An id the map has no room
 * for is only embedded again next time. */
static void remember_stored(struct mm_memory *m, const struct text_set *set)
{
    if (id_map_reserve(&m->stored, set->n) != 0) return;
    for (size_t i = 0; i < set->n; i++)
        id_map_put(&m->stored, set->s[i].id, &stored_marker);
}

static int write_once(struct mm_memory *m, const struct mm_fact *facts, size_t n,
                      const struct mm_alias *aliases, size_t naliases, int skip_stored,
                      struct mm_write_report *rep, struct mm_err *err)
{
    struct write_plan p;
    Memllm__Response **resp = calloc(m->shards, sizeof(*resp));
    long *slots = malloc((3 * n + 2 * naliases + 1) * sizeof(*slots));
    if (plan_init(&p, m) != 0 || !resp || !slots) {
        free(resp);
        free(slots);
        plan_free(&p);
        mm_err_set(err, "out of memory");
        return -1;
    }
    p.skip_stored = skip_stored;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = add_text(&p.entities, "subject", i, facts[i].s, &slots[3 * i], err);
        if (rc == 0) rc = add_text(&p.relations, "relation", i, facts[i].r, &slots[3 * i + 1], err);
        if (rc == 0) rc = add_text(&p.entities, "object", i, facts[i].o, &slots[3 * i + 2], err);
        if (rc == 0 && mm_text_check("source", facts[i].src.source, err) != 0) rc = -1;
        if (rc == 0 && facts[i].src.sentence < -1) {
            mm_err_set(err, "fact %zu: sentence %d (use -1 for none)", i, facts[i].src.sentence);
            rc = -1;
        }
        if (rc == 0 && facts[i].src.time_ms < 0) {
            mm_err_set(err, "fact %zu: time %lld ms is before 1970", i,
                       (long long)facts[i].src.time_ms);
            rc = -1;
        }
    }
    /* An alias's embedding travels as the alias's own text slot; the entity
     * is a slot too, since the alias may be its first mention. */
    struct text_set alias_texts = {0};
    long *aslots = slots + 3 * n;
    for (size_t i = 0; rc == 0 && i < naliases; i++) {
        rc = add_text(&p.entities, "entity of alias", i, aliases[i].entity, &aslots[2 * i], err);
        if (rc == 0)
            rc = add_text(&alias_texts, "alias", i, aliases[i].alias, &aslots[2 * i + 1], err);
    }
    float *alias_vecs = NULL;
    if (rc == 0) rc = plan_embed(&p, err);
    if (rc == 0 && !(alias_vecs = embed_set(m, &alias_texts, 0, &p.ar, err))) rc = -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (plan_fact(&p, slots[3 * i], slots[3 * i + 1], slots[3 * i + 2], &facts[i].src) != 0) {
            mm_err_set(err, "out of memory");
            rc = -1;
        }
    }
    for (size_t i = 0; rc == 0 && i < naliases; i++) {
        long e = aslots[2 * i];
        const struct text_slot *a = &alias_texts.s[aslots[2 * i + 1]];
        uint32_t home = mm_home_shard(p.entities.s[e].id, m->shards);
        Memllm__Alias *msg = mm_arena_alloc(&p.ar, sizeof(*msg));
        if (!msg || need_entity(&p, e) != 0) {
            mm_err_set(err, "out of memory");
            rc = -1;
            break;
        }
        memllm__alias__init(msg);
        msg->entity = (char *)p.entities.s[e].text;
        msg->alias = (char *)aliases[i].alias;
        msg->n_vec = a->msg->n_vec;
        msg->vec = a->msg->vec;
        if (ptr_push(&p.part[home].aliases, &p.ar, msg) != 0) {
            mm_err_set(err, "out of memory");
            rc = -1;
        }
    }
    if (rc == 0) rc = plan_send(&p, resp, err);
    if (rc == 0) {
        struct mm_write_report r = {0};
        for (uint32_t j = 0; j < m->shards; j++) {
            const Memllm__WriteResult *w = resp[j]->write;
            r.facts_added += w->forward_added;
            r.facts_existing += w->forward_existing;
            r.provenance_added += w->provenance_added;
            r.entities_added += w->entities_added;
            r.aliases_added += w->aliases_added;
            if (w->relations_added > r.relations_added) r.relations_added = w->relations_added;
        }
        /* provenance_added counts both copies of each fact. */
        r.provenance_added /= 2;
        if (rep) *rep = r;
        client_free_responses(m, resp);
        remember_stored(m, &p.entities);
        remember_stored(m, &p.relations);
    }
    free(alias_vecs);
    text_set_free(&alias_texts);
    free(resp);
    free(slots);
    plan_free(&p);
    return rc;
}

int mm_memory_write(struct mm_memory *m, const struct mm_fact *facts, size_t n,
                    const struct mm_alias *aliases, size_t naliases, struct mm_write_report *rep,
                    struct mm_err *err)
{
    m->refused = MEMLLM__STATUS__STATUS_OK;
    int rc = write_once(m, facts, n, aliases, naliases, 1, rep, err);
    if (rc != 0 && m->refused == MEMLLM__STATUS__STATUS_NOT_FOUND) {
        /* A shard lacks an entity or relation type this client wrote before:
         * another client restored it. What the other shards committed of
         * the first try is written again, which adds nothing twice. */
        id_map_free(&m->stored);
        rc = write_once(m, facts, n, aliases, naliases, 0, rep, err);
    }
    return rc;
}

/* A DeleteRequest per shard for the given copies. */
static int send_deletes(struct mm_memory *m, struct ptr_list *per_shard, struct mm_arena *ar,
                        uint64_t *forward_deleted, struct mm_err *err)
{
    uint32_t S = m->shards;
    Memllm__Request **reqs = mm_arena_array(ar, S, sizeof(*reqs));
    Memllm__Response **resp = calloc(S, sizeof(*resp));
    for (uint32_t j = 0; reqs && j < S; j++) {
        if (per_shard[j].n == 0) continue;
        Memllm__Request *r = mm_arena_alloc(ar, sizeof(*r));
        Memllm__DeleteRequest *d = mm_arena_alloc(ar, sizeof(*d));
        if (!r || !d) break;
        memllm__request__init(r);
        memllm__delete_request__init(d);
        d->copies = (Memllm__TripleCopy **)per_shard[j].p;
        d->n_copies = per_shard[j].n;
        r->command_case = MEMLLM__REQUEST__COMMAND_DELETE;
        r->delete_ = d;
        reqs[j] = r;
    }
    if (!resp || !reqs || ar->failed) {
        free(resp);
        mm_err_set(err, "out of memory");
        return -1;
    }
    int rc = client_round(m, reqs, resp, err);
    if (rc == 0) {
        for (uint32_t j = 0; j < S; j++)
            if (resp[j] && forward_deleted) *forward_deleted += resp[j]->delete_->forward_deleted;
        client_free_responses(m, resp);
    }
    free(resp);
    return rc;
}

static int delete_copy_of(struct write_plan *p, struct ptr_list *per_shard, const char *key,
                          const char *rel, const char *other, int reverse, struct mm_err *err)
{
    uint64_t id;
    if (mm_text_id_of(key, &id, err) != 0) return -1;
    Memllm__TripleCopy *c = new_copy(p, key, rel, other, reverse, NULL);
    if (!c || ptr_push(&per_shard[mm_home_shard(id, p->m->shards)], &p->ar, c) != 0) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    return 0;
}

int mm_memory_delete(struct mm_memory *m, const struct mm_fact *facts, size_t n, uint64_t *deleted,
                     struct mm_err *err)
{
    struct write_plan p;
    struct ptr_list *per_shard = calloc(m->shards, sizeof(*per_shard));
    if (plan_init(&p, m) != 0 || !per_shard) {
        free(per_shard);
        plan_free(&p);
        mm_err_set(err, "out of memory");
        return -1;
    }
    int rc = 0;
    char label[64];
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *parts[3] = {facts[i].s, facts[i].r, facts[i].o};
        const char *names[3] = {"subject", "relation", "object"};
        for (int k = 0; k < 3 && rc == 0; k++) {
            snprintf(label, sizeof(label), "%s of fact %zu", names[k], i);
            rc = mm_text_check(label, parts[k], err);
        }
        if (rc == 0) rc = delete_copy_of(&p, per_shard, facts[i].s, facts[i].r, facts[i].o, 0, err);
        if (rc == 0) rc = delete_copy_of(&p, per_shard, facts[i].o, facts[i].r, facts[i].s, 1, err);
    }
    uint64_t fwd = 0;
    if (rc == 0) rc = send_deletes(m, per_shard, &p.ar, &fwd, err);
    if (rc == 0 && deleted) *deleted = fwd;
    free(per_shard);
    plan_free(&p);
    return rc;
}

int mm_memory_replace(struct mm_memory *m, const struct mm_fact *fact, uint64_t *removed,
                      struct mm_err *err)
{
    struct write_plan p;
    Memllm__Response **resp = calloc(m->shards, sizeof(*resp));
    struct ptr_list *per_shard = calloc(m->shards, sizeof(*per_shard));
    if (plan_init(&p, m) != 0 || !resp || !per_shard) {
        free(resp);
        free(per_shard);
        plan_free(&p);
        mm_err_set(err, "out of memory");
        return -1;
    }
    long s = 0, r = 0, o = 0;
    uint64_t gone = 0;
    int rc = add_text(&p.entities, "subject", 0, fact->s, &s, err);
    if (rc == 0) rc = add_text(&p.relations, "relation", 0, fact->r, &r, err);
    if (rc == 0) rc = add_text(&p.entities, "object", 0, fact->o, &o, err);
    if (rc == 0) rc = mm_text_check("source", fact->src.source, err);
    if (rc == 0) rc = plan_embed(&p, err);
    if (rc != 0) goto done;

    /* Round 1, at home(s) in one batch: clear (s, r, *) but (s, r, o) and
     * store the forward copy of (s, r, o). The reverse copy follows in round
     * 2 with the removal of the old reverse copies; a crash in between leaves
     * what verify --repair completes from the forward copies. */
    uint32_t hs = mm_home_shard(p.entities.s[s].id, m->shards);
    uint32_t ho = mm_home_shard(p.entities.s[o].id, m->shards);
    Memllm__Clear *cl = mm_arena_alloc(&p.ar, sizeof(*cl));
    Memllm__TripleCopy *fwd = new_copy(&p, p.entities.s[s].text, p.relations.s[r].text,
                                       p.entities.s[o].text, 0, &fact->src);
    if ((!cl || !fwd || need_entity(&p, s) != 0 || ptr_push(&p.part[hs].copies, &p.ar, fwd) != 0 ||
         ptr_push(&p.part[hs].clears, &p.ar, cl) != 0)) {
        mm_err_set(err, "out of memory");
        rc = -1;
    }
    if (rc == 0) {
        memllm__clear__init(cl);
        cl->key = (char *)fact->s;
        cl->relation = (char *)fact->r;
        rc = plan_send(&p, resp, err);
    }
    if (rc == 0) {
        const Memllm__WriteResult *w = resp[hs]->write;
        /* The shard spared (s, r, o): every cleared copy is another fact. */
        for (size_t i = 0; rc == 0 && i < w->n_cleared; i++) {
            const char *old = mm_arena_strdup(&p.ar, w->cleared[i]->other);
            if (!old) {
                mm_err_set(err, "out of memory");
                rc = -1;
            } else {
                gone++;
                rc = delete_copy_of(&p, per_shard, old, fact->r, fact->s, 1, err);
            }
        }
        client_free_responses(m, resp);
    }
    if (rc == 0) rc = send_deletes(m, per_shard, &p.ar, NULL, err);
    if (rc == 0) {
        /* Round 2: the reverse copy of the new fact. */
        for (uint32_t j = 0; j < m->shards; j++) {
            memset(&p.part[j].entities, 0, sizeof(p.part[j].entities));
            memset(&p.part[j].copies, 0, sizeof(p.part[j].copies));
            memset(&p.part[j].clears, 0, sizeof(p.part[j].clears));
            memset(p.part[j].has_entity, 0, p.entities.n);
        }
        Memllm__TripleCopy *rev = new_copy(&p, p.entities.s[o].text, p.relations.s[r].text,
                                           p.entities.s[s].text, 1, &fact->src);
        if (!rev || need_entity(&p, o) != 0 || ptr_push(&p.part[ho].copies, &p.ar, rev) != 0) {
            mm_err_set(err, "out of memory");
            rc = -1;
        }
        if (rc == 0) rc = plan_send(&p, resp, err);
        if (rc == 0) client_free_responses(m, resp);
    }
done:
    if (rc == 0 && removed) *removed = gone;
    free(resp);
    free(per_shard);
    plan_free(&p);
    return rc;
}
