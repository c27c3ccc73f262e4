#include "memory_client_docred.h"
#include "text.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* data/wikidata_props_en.json (2,407 Wikidata property labels, 78 KB),
 * compiled into the library by cmake/embed_file.cmake. Built in rather than
 * looked up at run time: a default path would resolve against the current
 * directory or need the binary to find its own data folder (build tree,
 * install prefix, a copied binary), and fail in some of those; 78 KB of
 * read-only data costs nothing and makes `memllm memory import-docred`
 * work from anywhere. --props FILE still names another table. */
extern const unsigned char mm_wikidata_props_en[];
extern const size_t mm_wikidata_props_en_len;

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

/* The name of an entity's first mention (by sentence, then position). */
static const char *first_mention(json_t *mentions)
{
    long best_sent = 0, best_pos = 0;
    const char *first = NULL;
    size_t m;
    json_t *mention;
    json_array_foreach(mentions, m, mention)
    {
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
    return first;
}

char *mm_docred_entity_name(json_t *mentions)
{
    const char *first = first_mention(mentions);
    return first ? clean_name(first) : NULL;
}

json_t *mm_docred_props(const char *props_path, struct mm_err *err)
{
    json_error_t jerr;
    json_t *props = props_path ? json_load_file(props_path, 0, &jerr)
                               : json_loadb((const char *)mm_wikidata_props_en,
                                            mm_wikidata_props_en_len, 0, &jerr);
    if (!json_is_object(props)) {
        mm_err_set(err, "%s:%d: %s", props_path ? props_path : "built-in wikidata_props_en.json",
                   jerr.line, props ? "not a JSON object of property id -> label" : jerr.text);
        json_decref(props);
        return NULL;
    }
    return props;
}

struct doc_entity {
    char *name;     /* canonical: the first mention */
    char **aliases; /* other distinct names */
    size_t naliases;
    int used; /* appears in a fact */
};

static void free_entities(struct doc_entity *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].name);
        for (size_t a = 0; a < e[i].naliases; a++)
            free(e[i].aliases[a]);
        free(e[i].aliases);
    }
    free(e);
}

static int same_name(const char *a, const char *b)
{
    char *x = mm_text_normalise(a), *y = mm_text_normalise(b);
    int same = !x || !y || strcmp(x, y) == 0;
    free(x);
    free(y);
    return same;
}

/* The entities of one document from its vertexSet; NULL when out of
 * memory. */
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
        const char *first = first_mention(mentions);
        if (!first) continue;
        if (!(e[i].name = clean_name(first))) goto oom;
        for (size_t m = 0; m < nm; m++) {
            const char *name =
                json_string_value(json_object_get(json_array_get(mentions, m), "name"));
            if (!name) continue;
            char *alias = clean_name(name);
            if (!alias) goto oom;
            int dup = same_name(alias, e[i].name);
            for (size_t a = 0; a < e[i].naliases && !dup; a++)
                dup = same_name(alias, e[i].aliases[a]);
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

static void skip(struct mm_docred_doc *doc, char *problem, size_t n, const char *what,
                 const char *msg)
{
    if (doc->skipped++ == 0) {
        snprintf(problem, n, "%s: %s", what, msg);
        doc->first_problem = problem;
    }
}

/* Builds the facts and aliases of one document and hands them to fn. */
static int each_doc(json_t *jdoc, size_t index, size_t total, json_t *props,
                    int (*fn)(void *, const struct mm_docred_doc *), void *ctx, struct mm_err *err)
{
    struct mm_docred_doc doc = {.index = index, .total = total};
    char problem[MM_ERR_LEN + 80], what[64]; /* room for "what: message" */
    struct mm_err terr;
    doc.title = json_string_value(json_object_get(jdoc, "title"));
    json_t *labels = json_object_get(jdoc, "labels");
    size_t nent;
    struct doc_entity *ent = read_entities(json_object_get(jdoc, "vertexSet"), &nent);
    size_t nlab = json_array_size(labels);
    doc.facts = calloc(nlab ? nlab : 1, sizeof(*doc.facts));
    if (!ent || !doc.facts) {
        free_entities(ent, nent);
        free(doc.facts);
        mm_err_set(err, "document %zu: out of memory", index);
        return -1;
    }
    if (!doc.title || mm_text_check("title", doc.title, &terr) != 0) {
        skip(&doc, problem, sizeof(problem), "document", doc.title ? terr.msg : "no title");
        doc.title = NULL;
        nlab = 0;
    }
    for (size_t l = 0; l < nlab; l++) {
        json_t *lab = json_array_get(labels, l);
        json_int_t h = json_integer_value(json_object_get(lab, "h"));
        json_int_t t = json_integer_value(json_object_get(lab, "t"));
        const char *pid = json_string_value(json_object_get(lab, "r"));
        snprintf(what, sizeof(what), "label %zu", l);
        if (!pid || h < 0 || t < 0 || (size_t)h >= nent || (size_t)t >= nent || !ent[h].name ||
            !ent[t].name) {
            skip(&doc, problem, sizeof(problem), what, "bad h, t or r");
            continue;
        }
        const char *rel = json_string_value(json_object_get(props, pid));
        if (!rel) rel = pid;
        if (mm_text_check("subject", ent[h].name, &terr) != 0 ||
            mm_text_check("object", ent[t].name, &terr) != 0 ||
            mm_text_check("relation", rel, &terr) != 0) {
            skip(&doc, problem, sizeof(problem), what, terr.msg);
            continue;
        }
        /* The first evidence sentence; -1 when none is given. */
        int sentence = -1;
        json_t *ev = json_object_get(lab, "evidence");
        for (size_t x = 0; x < json_array_size(ev); x++) {
            json_int_t s = json_integer_value(json_array_get(ev, x));
            if (s >= 0 && s < 1000000 && (sentence < 0 || s < sentence)) sentence = (int)s;
        }
        doc.facts[doc.nfacts++] =
            (struct mm_fact){ent[h].name, rel, ent[t].name, {doc.title, sentence, 0}};
        ent[h].used = ent[t].used = 1;
    }
    size_t nal = 0;
    for (size_t i = 0; i < nent; i++)
        nal += ent[i].used ? ent[i].naliases : 0;
    doc.aliases = calloc(nal ? nal : 1, sizeof(*doc.aliases));
    int rc = 0;
    if (!doc.aliases) {
        mm_err_set(err, "document %zu: out of memory", index);
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < nent; i++)
        for (size_t a = 0; ent[i].used && a < ent[i].naliases; a++) {
            if (mm_text_check("alias", ent[i].aliases[a], &terr) != 0) {
                skip(&doc, problem, sizeof(problem), "alias", terr.msg);
                continue;
            }
            doc.aliases[doc.naliases++] = (struct mm_alias){ent[i].name, ent[i].aliases[a]};
        }
    if (rc == 0) rc = fn(ctx, &doc);
    free(doc.aliases);
    free(doc.facts);
    free_entities(ent, nent);
    return rc;
}

int mm_docred_each(const char *path, const char *props_path,
                   int (*fn)(void *ctx, const struct mm_docred_doc *doc), void *ctx, size_t *ndocs,
                   struct mm_err *err)
{
    json_error_t jerr;
    json_t *props = mm_docred_props(props_path, err);
    if (!props) return -1;
    json_t *docs = json_load_file(path, 0, &jerr);
    if (!json_is_array(docs)) {
        mm_err_set(err, "%s:%d: %s", path, jerr.line,
                   docs ? "not a JSON array of documents" : jerr.text);
        json_decref(docs);
        json_decref(props);
        return -1;
    }
    *ndocs = json_array_size(docs);
    int rc = 0;
    for (size_t d = 0; d < *ndocs && rc == 0; d++)
        rc = each_doc(json_array_get(docs, d), d, *ndocs, props, fn, ctx, err);
    json_decref(docs);
    json_decref(props);
    return rc;
}
