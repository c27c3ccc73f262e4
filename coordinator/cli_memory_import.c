/* memllm memory import-docred FILE.json: the gold triples of DocRED /
 * Re-DocRED documents, with Wikidata property ids turned into their English
 * labels, each entity named by its first mention and its other mentions
 * kept as aliases, and provenance = document title + evidence sentence. */
#include "cli_memory_internal.h"
#include "progress.h"
#include "text.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WARNINGS 5

/* A mention name with every whitespace run (DocRED has a few newlines)
 * made one space, trimmed. malloc'ed. */
static char *clean_name(const char *name)
{
    char *out = malloc(strlen(name) + 1);
    if (!out) return NULL;
    size_t o = 0;
    int space = 0;
    for (const char *p = name; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            space = o > 0;
            continue;
        }
        if (space) out[o++] = ' ';
        space = 0;
        out[o++] = *p;
    }
    out[o] = '\0';
    return out;
}

static const char *default_props(char *buf, size_t n)
{
    const char *shared = getenv("MEMLLM_SHARED_DATA");
    snprintf(buf, n, "%s/wikidata_props_en.json", shared ? shared : "../shared/data");
    return buf;
}

struct doc_entity {
    char *name;     /* canonical: the first mention */
    char **aliases; /* other distinct names */
    size_t naliases;
    int used; /* appears in a fact */
};

struct import_stats {
    uint64_t docs, facts, added, existing, aliases, skipped;
    int warnings;
};

static void warn(struct import_stats *st, const char *file, size_t d, const char *what,
                 const char *msg)
{
    st->skipped++;
    if (st->warnings++ < MAX_WARNINGS)
        fprintf(stderr, "memllm memory import-docred: %s: document %zu: %s skipped: %s\n", file, d,
                what, msg);
}

static void free_entities(struct doc_entity *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].name);
        for (size_t a = 0; a < e[i].naliases; a++)
            free(e[i].aliases[a]);
        free(e[i].aliases);
    }
    free(e);
}

/* The entities of one document from its vertexSet. */
static struct doc_entity *read_entities(json_t *vertex_set, size_t *n)
{
    *n = json_array_size(vertex_set);
    struct doc_entity *e = calloc(*n ? *n : 1, sizeof(*e));
    if (!e) return NULL;
    for (size_t i = 0; i < *n; i++) {
        json_t *mentions = json_array_get(vertex_set, i);
        size_t nm = json_array_size(mentions);
        e[i].aliases = calloc(nm ? nm : 1, sizeof(char *));
        if (!e[i].aliases) goto oom;
        long best_sent = 0, best_pos = 0;
        const char *first = NULL;
        for (size_t m = 0; m < nm; m++) {
            json_t *mention = json_array_get(mentions, m);
            const char *name = json_string_value(json_object_get(mention, "name"));
            long sent = (long)json_integer_value(json_object_get(mention, "sent_id"));
            long pos = (long)json_integer_value(json_array_get(json_object_get(mention, "pos"), 0));
            if (!name) continue;
            if (!first || sent < best_sent || (sent == best_sent && pos < best_pos)) {
                first = name;
                best_sent = sent;
                best_pos = pos;
            }
        }
        if (!first) continue;
        if (!(e[i].name = clean_name(first))) goto oom;
        for (size_t m = 0; m < nm; m++) {
            const char *name =
                json_string_value(json_object_get(json_array_get(mentions, m), "name"));
            if (!name) continue;
            char *alias = clean_name(name);
            if (!alias) goto oom;
            char *na = mm_text_normalise(alias), *nc = mm_text_normalise(e[i].name);
            int dup = !na || !nc || strcmp(na, nc) == 0;
            for (size_t a = 0; a < e[i].naliases && !dup; a++) {
                char *nb = mm_text_normalise(e[i].aliases[a]);
                dup = !nb || strcmp(na, nb) == 0;
                free(nb);
            }
            free(na);
            free(nc);
            if (dup)
                free(alias);
            else
                e[i].aliases[e[i].naliases++] = alias;
        }
    }
    return e;
oom:
    free_entities(e, *n);
    return NULL;
}

static int import_doc(struct cli_memory *c, json_t *doc, size_t d, json_t *props,
                      struct import_stats *st)
{
    const char *file = c->args[0];
    const char *title = json_string_value(json_object_get(doc, "title"));
    json_t *labels = json_object_get(doc, "labels");
    size_t nent;
    struct doc_entity *ent = read_entities(json_object_get(doc, "vertexSet"), &nent);
    if (!ent) return cli_memory_fail("import-docred", "out of memory");
    size_t nlab = json_array_size(labels);
    struct mm_fact *facts = calloc(nlab ? nlab : 1, sizeof(*facts));
    struct mm_err err;
    char what[64];
    int rc = facts ? 0 : cli_memory_fail("import-docred", "out of memory");
    size_t n = 0;
    if (rc == 0 && (!title || mm_text_check("title", title, &err) != 0)) {
        warn(st, file, d, "document", title ? err.msg : "no \"title\" string");
        nlab = 0;
    }
    for (size_t l = 0; rc == 0 && l < nlab; l++) {
        json_t *lab = json_array_get(labels, l);
        json_int_t h = json_integer_value(json_object_get(lab, "h"));
        json_int_t t = json_integer_value(json_object_get(lab, "t"));
        const char *pid = json_string_value(json_object_get(lab, "r"));
        snprintf(what, sizeof(what), "label %zu", l);
        if (!pid || h < 0 || t < 0 || (size_t)h >= nent || (size_t)t >= nent || !ent[h].name ||
            !ent[t].name) {
            warn(st, file, d, what, "bad h, t or r");
            continue;
        }
        const char *rel = json_string_value(json_object_get(props, pid));
        if (!rel) rel = pid;
        if (mm_text_check("subject", ent[h].name, &err) != 0 ||
            mm_text_check("object", ent[t].name, &err) != 0 ||
            mm_text_check("relation", rel, &err) != 0) {
            warn(st, file, d, what, err.msg);
            continue;
        }
        /* The first evidence sentence; -1 when none is given. */
        int sentence = -1;
        json_t *ev = json_object_get(lab, "evidence");
        for (size_t x = 0; x < json_array_size(ev); x++) {
            json_int_t s = json_integer_value(json_array_get(ev, x));
            if (s >= 0 && s < 1000000 && (sentence < 0 || s < sentence)) sentence = (int)s;
        }
        facts[n++] = (struct mm_fact){ent[h].name, rel, ent[t].name, {title, sentence}};
        ent[h].used = ent[t].used = 1;
    }
    size_t nal = 0;
    for (size_t i = 0; i < nent; i++)
        nal += ent[i].used ? ent[i].naliases : 0;
    struct mm_alias *aliases = calloc(nal ? nal : 1, sizeof(*aliases));
    if (rc == 0 && !aliases) rc = cli_memory_fail("import-docred", "out of memory");
    nal = 0;
    for (size_t i = 0; rc == 0 && i < nent; i++)
        for (size_t a = 0; ent[i].used && a < ent[i].naliases; a++) {
            if (mm_text_check("alias", ent[i].aliases[a], &err) != 0) {
                warn(st, file, d, "alias", err.msg);
                continue;
            }
            aliases[nal++] = (struct mm_alias){ent[i].name, ent[i].aliases[a]};
        }
    struct mm_write_report rep = {0};
    if (rc == 0 && n && mm_memory_write(c->m, facts, n, aliases, nal, &rep, &err) != 0) {
        fprintf(stderr, "memllm memory import-docred: %s: document %zu (%s): %s\n", file, d, title,
                err.msg);
        rc = 1;
    }
    st->docs++;
    st->facts += n;
    st->added += rep.facts_added;
    st->existing += rep.facts_existing;
    st->aliases += rep.aliases_added;
    free(aliases);
    free(facts);
    free_entities(ent, nent);
    return rc;
}

int cli_memory_import_docred(struct cli_memory *c)
{
    if (c->nargs != 1) return cli_memory_fail("import-docred", "give one DocRED JSON file");
    char buf[4096];
    const char *props_path = c->props ? c->props : default_props(buf, sizeof(buf));
    json_error_t jerr;
    json_t *props = json_load_file(props_path, 0, &jerr);
    if (!json_is_object(props)) {
        fprintf(stderr, "memllm memory import-docred: %s:%d: %s\n", props_path, jerr.line,
                props ? "not a JSON object of property id -> label" : jerr.text);
        json_decref(props);
        return 1;
    }
    json_t *docs = json_load_file(c->args[0], 0, &jerr);
    if (!json_is_array(docs)) {
        fprintf(stderr, "memllm memory import-docred: %s:%d: %s\n", c->args[0], jerr.line,
                docs ? "not a JSON array of documents" : jerr.text);
        json_decref(docs);
        json_decref(props);
        return 1;
    }
    struct import_stats st = {0};
    struct progress bar;
    size_t ndocs = json_array_size(docs);
    progress_start(&bar, "import", (int64_t)ndocs);
    int rc = 0;
    for (size_t d = 0; d < ndocs && rc == 0; d++) {
        rc = import_doc(c, json_array_get(docs, d), d, props, &st);
        progress_update(&bar, (int64_t)d + 1, (int64_t)st.facts, "facts");
    }
    progress_finish(&bar, (int64_t)st.docs, (int64_t)st.facts, "facts");
    json_decref(docs);
    json_decref(props);
    if (st.warnings > MAX_WARNINGS)
        fprintf(stderr, "memllm memory import-docred: %d more items skipped\n",
                st.warnings - MAX_WARNINGS);
    printf("documents: %llu\nfacts: %llu\nadded: %llu\nexisting: %llu\naliases: %llu\n"
           "skipped: %llu\n",
           (unsigned long long)st.docs, (unsigned long long)st.facts, (unsigned long long)st.added,
           (unsigned long long)st.existing, (unsigned long long)st.aliases,
           (unsigned long long)st.skipped);
    return rc;
}
