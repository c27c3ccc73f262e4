#include "edit_log.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "text.h"

void edit_batch_free(struct edit_batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        struct edit_fact *f = &b->facts[i];
        free(f->s);
        free(f->r);
        free(f->o);
        for (size_t k = 0; k < f->nprov; k++)
            free(f->prov[k].source);
        free(f->prov);
    }
    free(b->facts);
    free(b->file);
    free(b->state);
    memset(b, 0, sizeof(*b));
}

static int fact_key(const char *s, const char *r, const char *o, uint64_t key[3],
                    struct mm_err *err)
{
    return mm_text_id_of(s, &key[0], err) || mm_text_id_of(r, &key[1], err) ||
           mm_text_id_of(o, &key[2], err);
}

static int recorded(const struct edit_batch *b, const uint64_t key[3])
{
    for (size_t i = 0; i < b->n; i++)
        if (!memcmp(b->facts[i].key, key, sizeof(b->facts[i].key))) return 1;
    return 0;
}

/* Appends a fact (texts copied); its provenance is added by the caller. */
static struct edit_fact *add_fact(struct edit_batch *b, const char *s, const char *r, const char *o,
                                  const uint64_t key[3], struct mm_err *err)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 16;
        struct edit_fact *f = realloc(b->facts, cap * sizeof(*f));
        if (!f) {
            mm_err_set(err, "out of memory");
            return NULL;
        }
        b->facts = f;
        b->cap = cap;
    }
    struct edit_fact *f = &b->facts[b->n];
    *f = (struct edit_fact){.s = strdup(s), .r = strdup(r), .o = strdup(o)};
    memcpy(f->key, key, sizeof(f->key));
    b->n++;
    if (!f->s || !f->r || !f->o) {
        mm_err_set(err, "out of memory");
        return NULL;
    }
    return f;
}

static int copy_provenance(struct edit_fact *f, const struct mm_provenance *p, size_t n,
                           struct mm_err *err)
{
    f->prov = calloc(n ? n : 1, sizeof(*f->prov));
    if (!f->prov) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        f->prov[i] = p[i];
        if (!(f->prov[i].source = strdup(p[i].source))) {
            mm_err_set(err, "out of memory");
            return -1;
        }
        f->nprov++;
    }
    return 0;
}

int edit_snapshot(struct mm_memory *m, struct edit_batch *b, const char *s, const char *r,
                  const char *o, struct mm_err *err)
{
    uint64_t sid, rid;
    if (mm_text_id_of(s, &sid, err) || mm_text_id_of(r, &rid, err)) return -1;
    /* Only the pair whose texts are s and r, all of its facts, all their
     * provenance: exact candidates are always returned, fuzzy ones are
     * kept out by the thresholds. */
    struct mm_query_options qo;
    mm_query_options_default(&qo);
    qo.tau_e = qo.tau_r = 1.0f;
    qo.tau_t = -1.0f;
    qo.k_entities = 16;
    qo.k_relations = 4;
    qo.qthr = qo.per_pair = qo.max_provenance = UINT32_MAX;
    struct mm_query q = {.entity = s, .relation = r, .want_subject = 0};
    struct mm_answers a;
    if (mm_memory_query(m, &q, 1, &qo, &a, err)) return -1;
    int rc = 0, found = 0;
    for (size_t i = 0; rc == 0 && i < a.n; i++) {
        const struct mm_answer *ans = &a.a[i];
        uint64_t key[3];
        if ((rc = fact_key(ans->entity, r, ans->text, key, err))) break;
        /* An exact name can also be another entity's alias. */
        if (!ans->exact || key[0] != sid || key[1] != rid) continue;
        if (o) {
            uint64_t oid;
            if ((rc = mm_text_id_of(o, &oid, err))) break;
            if (key[2] != oid) continue;
            found = 1;
        }
        if (recorded(b, key)) continue;
        if (ans->nprov != ans->prov_count) {
            mm_err_set(err, "%s>>%s>>%s: %u provenance records, %zu returned", ans->entity, r,
                       ans->text, ans->prov_count, ans->nprov);
            rc = -1;
            break;
        }
        struct edit_fact *f = add_fact(b, ans->entity, r, ans->text, key, err);
        if (!f || copy_provenance(f, ans->prov, ans->nprov, err)) {
            rc = -1;
            break;
        }
        f->existed = 1;
    }
    mm_answers_free(&a, 1);
    if (rc || !o || found) return rc;
    uint64_t key[3];
    if (fact_key(s, r, o, key, err)) return -1;
    if (recorded(b, key)) return 0;
    return add_fact(b, s, r, o, key, err) ? 0 : -1;
}

/* --- the record file ------------------------------------------------------------------------ */

static void record_path(char *path, size_t n, const char *dir, const char *id, const char *suffix)
{
    snprintf(path, n, "%s/edits/%s.json%s", dir, id, suffix);
}

static json_t *batch_json(const struct edit_batch *b)
{
    json_t *facts = json_array();
    for (size_t i = 0; i < b->n; i++) {
        const struct edit_fact *f = &b->facts[i];
        json_t *prov = json_array();
        for (size_t k = 0; k < f->nprov; k++)
            json_array_append_new(prov, json_pack("{s:s, s:i, s:I}", "source", f->prov[k].source,
                                                  "sentence", f->prov[k].sentence, "time_ms",
                                                  (json_int_t)f->prov[k].time_ms));
        json_array_append_new(facts,
                              json_pack("{s:s, s:s, s:s, s:b, s:o}", "s", f->s, "r", f->r, "o",
                                        f->o, "existed", f->existed, "provenance", prov));
    }
    return json_pack("{s:s, s:s, s:s, s:o}", "batch", b->id, "file", b->file ? b->file : "",
                     "state", b->state ? b->state : "", "facts", facts);
}

static int fsync_path(const char *path, int flags)
{
    int fd = open(path, flags);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int edit_log_save(const char *dir, const struct edit_batch *b, struct mm_err *err)
{
    char path[4096], tmp[4200], edits[4096];
    record_path(path, sizeof(path), dir, b->id, "");
    record_path(tmp, sizeof(tmp), dir, b->id, ".tmp");
    snprintf(edits, sizeof(edits), "%s/edits", dir);
    json_t *j = batch_json(b);
    if (!j) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    int rc = json_dump_file(j, tmp, JSON_INDENT(1) | JSON_ENSURE_ASCII);
    json_decref(j);
    if (rc || fsync_path(tmp, O_RDONLY) || rename(tmp, path) || fsync_path(edits, O_RDONLY)) {
        mm_err_set(err, "%s: cannot save the undo record: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int edit_log_create(const char *dir, struct edit_batch *b, struct mm_err *err)
{
    char edits[4096], path[4200];
    snprintf(edits, sizeof(edits), "%s/edits", dir);
    if ((mkdir(dir, 0755) && errno != EEXIST) || (mkdir(edits, 0755) && errno != EEXIST)) {
        mm_err_set(err, "%s: %s", edits, strerror(errno));
        return -1;
    }
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", gmtime_r(&now, &tm));
    /* The first free id of this second; creating the file reserves it. */
    for (int k = 1;; k++) {
        snprintf(b->id, sizeof(b->id), "%s-%d", stamp, k);
        record_path(path, sizeof(path), dir, b->id, "");
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
        if (fd >= 0) {
            close(fd);
            break;
        }
        if (errno != EEXIST) {
            mm_err_set(err, "%s: %s", path, strerror(errno));
            return -1;
        }
    }
    return edit_log_save(dir, b, err);
}

static char *dup_string(json_t *v)
{
    return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

int edit_log_load(const char *dir, const char *id, struct edit_batch *b, struct mm_err *err)
{
    memset(b, 0, sizeof(*b));
    char path[4096];
    if (strlen(id) >= sizeof(b->id) || strchr(id, '/')) {
        mm_err_set(err, "'%s' is not an edit batch id", id);
        return -1;
    }
    record_path(path, sizeof(path), dir, id, "");
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (!j) {
        if (access(path, F_OK) != 0)
            mm_err_set(err, "no edit batch '%s' in %s/edits", id, dir);
        else
            mm_err_set(err, "%s: %s", path, jerr.text);
        return -1;
    }
    snprintf(b->id, sizeof(b->id), "%s", id);
    b->file = dup_string(json_object_get(j, "file"));
    b->state = dup_string(json_object_get(j, "state"));
    json_t *facts = json_object_get(j, "facts");
    int rc = b->file && b->state && json_is_array(facts) ? 0 : -1;
    size_t i;
    json_t *f;
    json_array_foreach(facts, i, f)
    {
        if (rc) break;
        const char *s = json_string_value(json_object_get(f, "s"));
        const char *r = json_string_value(json_object_get(f, "r"));
        const char *o = json_string_value(json_object_get(f, "o"));
        json_t *prov = json_object_get(f, "provenance");
        uint64_t key[3];
        struct edit_fact *ef;
        if (!s || !r || !o || !json_is_array(prov) || fact_key(s, r, o, key, err) ||
            !(ef = add_fact(b, s, r, o, key, err)) ||
            !(ef->prov = calloc(json_array_size(prov) + 1, sizeof(*ef->prov)))) {
            rc = -1;
            break;
        }
        ef->existed = json_is_true(json_object_get(f, "existed"));
        size_t k;
        json_t *p;
        json_array_foreach(prov, k, p)
        {
            json_t *source = json_object_get(p, "source"), *sent = json_object_get(p, "sentence");
            json_t *t = json_object_get(p, "time_ms");
            if (!json_is_string(source) || !json_is_integer(sent) || !json_is_integer(t) ||
                !(ef->prov[k].source = strdup(json_string_value(source)))) {
                rc = -1;
                break;
            }
            ef->prov[k].sentence = (int)json_integer_value(sent);
            ef->prov[k].time_ms = json_integer_value(t);
            ef->nprov++;
        }
    }
    json_decref(j);
    if (rc) {
        edit_batch_free(b);
        mm_err_set(err, "%s: not an undo record", path);
    }
    return rc;
}

/* --- undo ----------------------------------------------------------------------------------- */

int edit_undo(struct mm_memory *m, const struct edit_batch *b, struct mm_err *err)
{
    char source[EDIT_BATCH_ID_MAX + 8];
    snprintf(source, sizeof(source), "undo:%s", b->id);
    struct mm_fact *facts = calloc(b->n ? b->n : 1, sizeof(*facts));
    if (!facts) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    size_t records = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct edit_fact *f = &b->facts[i];
        facts[i] = (struct mm_fact){f->s, f->r, f->o, {source, -1, 0}};
        if (f->existed) records += f->nprov;
    }
    uint64_t deleted;
    int rc = b->n ? mm_memory_delete(m, facts, b->n, &deleted, err) : 0;
    /* One write puts back every record of the facts that existed, each
     * with the time it had. */
    struct mm_fact *back = calloc(records ? records : 1, sizeof(*back));
    if (rc == 0 && !back) {
        mm_err_set(err, "out of memory");
        rc = -1;
    }
    size_t n = 0;
    for (size_t i = 0; rc == 0 && i < b->n; i++) {
        const struct edit_fact *f = &b->facts[i];
        for (size_t k = 0; f->existed && k < f->nprov; k++)
            back[n++] = (struct mm_fact){
                f->s, f->r, f->o, {f->prov[k].source, f->prov[k].sentence, f->prov[k].time_ms}};
    }
    if (rc == 0 && n) rc = mm_memory_write(m, back, n, NULL, 0, NULL, err);
    free(back);
    free(facts);
    return rc;
}
