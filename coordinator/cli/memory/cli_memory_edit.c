/* memllm memory write / delete / replace: facts given as "s>>r>>o" arguments
 * or, for write, as a JSONL file. */
#include "cli_memory_internal.h"
#include "triple_text.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parses the positional "s>>r>>o" arguments; all or nothing. */
static int parse_args(struct cli_memory *c, const char *cmd, struct mm_triple_text *t,
                      struct mm_fact *f)
{
    for (int i = 0; i < c->nargs; i++) {
        struct mm_err err;
        if (mm_triple_parse(c->args[i], &t[i], &err) != 0) {
            for (int j = 0; j < i; j++)
                mm_triple_text_free(&t[j]);
            fprintf(stderr, "memllm memory %s: argument %d: %s\n", cmd, i + 1, err.msg);
            return -1;
        }
        f[i] = (struct mm_fact){t[i].s, t[i].r, t[i].o, {c->source, -1, 0}};
    }
    return 0;
}

#define JSONL_BATCH 1000

/* One JSONL line: {"subject": .., "relation": .., "object": ..} or
 * {"triple": "s>>r>>o"}, with optional "source" and "sentence". */
static int parse_line(const char *line, const char *file, long lineno, const char *default_source,
                      struct mm_triple_text *t, struct mm_fact *f, char **source_out)
{
    json_error_t jerr;
    json_t *o = json_loads(line, 0, &jerr);
    if (!o || !json_is_object(o)) {
        fprintf(stderr, "memllm memory write: %s:%ld: %s\n", file, lineno,
                o ? "not a JSON object" : jerr.text);
        json_decref(o);
        return -1;
    }
    int rc = 0;
    struct mm_err err;
    const char *triple = json_string_value(json_object_get(o, "triple"));
    const char *s = json_string_value(json_object_get(o, "subject"));
    const char *r = json_string_value(json_object_get(o, "relation"));
    const char *ob = json_string_value(json_object_get(o, "object"));
    if (triple) {
        if (mm_triple_parse(triple, t, &err) != 0) {
            fprintf(stderr, "memllm memory write: %s:%ld: %s\n", file, lineno, err.msg);
            rc = -1;
        }
    } else if (s && r && ob) {
        t->s = strdup(s);
        t->r = strdup(r);
        t->o = strdup(ob);
        if (!t->s || !t->r || !t->o) rc = -1;
    } else {
        fprintf(stderr,
                "memllm memory write: %s:%ld: needs \"triple\" or \"subject\", \"relation\" "
                "and \"object\" strings\n",
                file, lineno);
        rc = -1;
    }
    const char *src = json_string_value(json_object_get(o, "source"));
    json_t *sent = json_object_get(o, "sentence");
    *source_out = strdup(src ? src : default_source);
    if (!*source_out) rc = -1;
    int sentence = -1;
    if (sent && (!json_is_integer(sent) || json_integer_value(sent) < -1 ||
                 json_integer_value(sent) > 1000000000)) {
        fprintf(stderr, "memllm memory write: %s:%ld: \"sentence\" must be an integer >= -1\n",
                file, lineno);
        rc = -1;
    } else if (sent) {
        sentence = (int)json_integer_value(sent);
    }
    json_decref(o);
    if (rc != 0) {
        mm_triple_text_free(t);
        free(*source_out);
        *source_out = NULL;
        return -1;
    }
    *f = (struct mm_fact){t->s, t->r, t->o, {*source_out, sentence, 0}};
    return 0;
}

static void free_batch(struct mm_triple_text *t, char **sources, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mm_triple_text_free(&t[i]);
        free(sources[i]);
    }
}

static int write_file(struct cli_memory *c, struct mm_write_report *total)
{
    FILE *in = fopen(c->file, "r");
    if (!in) {
        fprintf(stderr, "memllm memory write: cannot open %s\n", c->file);
        return 1;
    }
    struct mm_triple_text *t = calloc(JSONL_BATCH, sizeof(*t));
    struct mm_fact *f = calloc(JSONL_BATCH, sizeof(*f));
    char **sources = calloc(JSONL_BATCH, sizeof(*sources));
    char *line = NULL;
    size_t cap = 0, n = 0;
    long lineno = 0;
    int rc = t && f && sources ? 0 : 1;
    ssize_t len;
    while (rc == 0 && (len = getline(&line, &cap, in)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0) continue;
        if (parse_line(line, c->file, lineno, c->source, &t[n], &f[n], &sources[n]) != 0) {
            rc = 1;
            break;
        }
        if (++n == JSONL_BATCH) {
            struct mm_write_report rep = {0};
            struct mm_err err;
            if (mm_memory_write(c->m, f, n, NULL, 0, &rep, &err) != 0) {
                fprintf(stderr, "memllm memory write: %s: lines %ld-%ld: %s\n", c->file,
                        lineno - (long)n + 1, lineno, err.msg);
                rc = 1;
            }
            total->facts_added += rep.facts_added;
            total->facts_existing += rep.facts_existing;
            free_batch(t, sources, n);
            n = 0;
        }
    }
    if (rc == 0 && n) {
        struct mm_write_report rep = {0};
        struct mm_err err;
        if (mm_memory_write(c->m, f, n, NULL, 0, &rep, &err) != 0) {
            fprintf(stderr, "memllm memory write: %s: lines up to %ld: %s\n", c->file, lineno,
                    err.msg);
            rc = 1;
        } else {
            total->facts_added += rep.facts_added;
            total->facts_existing += rep.facts_existing;
        }
    }
    if (t && sources) free_batch(t, sources, n);
    free(line);
    free(t);
    free(f);
    free(sources);
    fclose(in);
    return rc;
}

int cli_memory_write(struct cli_memory *c)
{
    if ((c->nargs == 0) == (c->file == NULL))
        return cli_memory_fail("write", "give facts as \"s>>r>>o\" arguments or --file, not both");
    struct mm_write_report total = {0};
    if (c->file) {
        if (write_file(c, &total) != 0) return 1;
    } else {
        struct mm_triple_text *t = calloc((size_t)c->nargs, sizeof(*t));
        struct mm_fact *f = calloc((size_t)c->nargs, sizeof(*f));
        int rc = t && f ? parse_args(c, "write", t, f) : -1;
        struct mm_err err;
        if (rc == 0) {
            rc = mm_memory_write(c->m, f, (size_t)c->nargs, NULL, 0, &total, &err);
            if (rc != 0) cli_memory_fail("write", err.msg);
            for (int i = 0; i < c->nargs; i++)
                mm_triple_text_free(&t[i]);
        }
        free(t);
        free(f);
        if (rc != 0) return 1;
    }
    printf("added: %llu\nexisting: %llu\n", (unsigned long long)total.facts_added,
           (unsigned long long)total.facts_existing);
    return 0;
}

int cli_memory_delete(struct cli_memory *c)
{
    if (c->nargs == 0) return cli_memory_fail("delete", "give the facts as \"s>>r>>o\"");
    struct mm_triple_text *t = calloc((size_t)c->nargs, sizeof(*t));
    struct mm_fact *f = calloc((size_t)c->nargs, sizeof(*f));
    int rc = t && f ? parse_args(c, "delete", t, f) : -1;
    uint64_t deleted = 0;
    struct mm_err err;
    if (rc == 0) {
        rc = mm_memory_delete(c->m, f, (size_t)c->nargs, &deleted, &err);
        if (rc != 0) cli_memory_fail("delete", err.msg);
        for (int i = 0; i < c->nargs; i++)
            mm_triple_text_free(&t[i]);
    }
    free(t);
    free(f);
    if (rc != 0) return 1;
    printf("deleted: %llu\nnot found: %llu\n", (unsigned long long)deleted,
           (unsigned long long)((uint64_t)c->nargs - deleted));
    return 0;
}

int cli_memory_replace(struct cli_memory *c)
{
    if (c->nargs != 1) return cli_memory_fail("replace", "give one fact \"s>>r>>o\"");
    struct mm_triple_text t;
    struct mm_fact f;
    if (parse_args(c, "replace", &t, &f) != 0) return 1;
    uint64_t removed = 0;
    struct mm_err err;
    int rc = mm_memory_replace(c->m, &f, &removed, &err);
    mm_triple_text_free(&t);
    if (rc != 0) return cli_memory_fail("replace", err.msg);
    printf("replaced: %llu\n", (unsigned long long)removed);
    return 0;
}
