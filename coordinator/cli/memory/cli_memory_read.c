/* memllm memory query / dump / stats / entity. */
#include "cli_memory_internal.h"
#include "triple_text.h"

#include <stdio.h>
#include <stdlib.h>

/* "source #sentence; ..." and, with times, " @ms" after each record. */
static void print_provenance(const struct mm_provenance *p, size_t n, uint32_t count, int times)
{
    for (size_t i = 0; i < n; i++) {
        printf("%s%s", i ? "; " : "", p[i].source);
        if (p[i].sentence >= 0) printf(" #%d", p[i].sentence);
        if (times) printf(" @%lld", (long long)p[i].time_ms);
    }
    if (count > n) printf("%s+%u more", n ? "; " : "", count - (uint32_t)n);
}

/* Prints each query, then one line per answer:
 *   <answer> TAB <score> TAB exact|fuzzy TAB <entity>>><relation> TAB <sources> */
int cli_memory_query(struct cli_memory *c)
{
    if (c->nargs == 0) return cli_memory_fail("query", "give queries \"s>>r>>\" or \">>r>>o\"");
    struct mm_triple_text *t = calloc((size_t)c->nargs, sizeof(*t));
    struct mm_query *q = calloc((size_t)c->nargs, sizeof(*q));
    struct mm_answers *a = calloc((size_t)c->nargs, sizeof(*a));
    if (!t || !q || !a) {
        free(t);
        free(q);
        free(a);
        return cli_memory_fail("query", "out of memory");
    }
    int rc = 0, parsed = 0;
    struct mm_err err;
    for (; parsed < c->nargs; parsed++) {
        int want_subject;
        if (mm_query_parse(c->args[parsed], &t[parsed], &want_subject, &err) != 0) {
            fprintf(stderr, "memllm memory query: argument %d: %s\n", parsed + 1, err.msg);
            rc = 1;
            break;
        }
        q[parsed] =
            (struct mm_query){want_subject ? t[parsed].o : t[parsed].s, t[parsed].r, want_subject};
    }
    if (rc == 0 && mm_memory_query(c->m, q, (size_t)c->nargs, &c->q, a, &err) != 0)
        rc = cli_memory_fail("query", err.msg);
    for (int i = 0; rc == 0 && i < c->nargs; i++) {
        printf("%s\n", c->args[i]);
        for (size_t x = 0; x < a[i].n; x++) {
            const struct mm_answer *ans = &a[i].a[x];
            printf("  %s\t%.4f\t%s\t%s>>%s\t", ans->text, ans->score,
                   ans->exact ? "exact" : "fuzzy", ans->entity, ans->relation);
            print_provenance(ans->prov, ans->nprov, ans->prov_count, c->times);
            printf("\n");
        }
    }
    if (rc == 0) mm_answers_free(a, (size_t)c->nargs);
    for (int i = 0; i < parsed; i++)
        mm_triple_text_free(&t[i]);
    free(t);
    free(q);
    free(a);
    return rc;
}

static int print_copy(void *ctx, const struct mm_copy *c)
{
    const struct cli_memory *cm = ctx;
    if (c->reverse && !cm->all_copies) return 0;
    if (c->reverse)
        printf("%s>>%s>>%s\treverse@%u\t", c->other, c->relation, c->key, c->shard);
    else
        printf("%s>>%s>>%s\t", c->key, c->relation, c->other);
    print_provenance(c->prov, c->nprov, (uint32_t)c->nprov, cm->times);
    printf("\n");
    return 0;
}

int cli_memory_dump(struct cli_memory *c)
{
    if (c->nargs) return cli_memory_fail("dump", "takes no arguments");
    struct mm_err err;
    if (mm_memory_scan(c->m, print_copy, c, &err) != 0) return cli_memory_fail("dump", err.msg);
    return 0;
}

int cli_memory_stats(struct cli_memory *c)
{
    if (c->nargs) return cli_memory_fail("stats", "takes no arguments");
    struct mm_memory_stats st;
    struct mm_err err;
    if (mm_memory_stats(c->m, &st, &err) != 0) return cli_memory_fail("stats", err.msg);
    printf("shards: %u\n", st.shards);
    printf("embedder: %s\n", st.embedder);
    printf("dim: %d\n", st.dim);
    printf("entities: %llu\n", (unsigned long long)st.entities);
    printf("names: %llu\n", (unsigned long long)st.names);
    printf("relations: %llu\n", (unsigned long long)st.relations);
    printf("triples: %llu\n", (unsigned long long)st.triples);
    printf("reverse_copies: %llu\n", (unsigned long long)st.reverse_copies);
    printf("provenance: %llu\n", (unsigned long long)st.provenance);
    printf("sst_bytes: %llu\n", (unsigned long long)st.sst_bytes);
    return 0;
}

int cli_memory_entity(struct cli_memory *c)
{
    if (c->nargs != 1) return cli_memory_fail("entity", "give one entity text");
    struct mm_entity_record *r;
    size_t n;
    struct mm_err err;
    if (mm_memory_get_entity(c->m, c->args[0], &r, &n, &err) != 0)
        return cli_memory_fail("entity", err.msg);
    for (size_t i = 0; i < n; i++) {
        printf("%s\tid %016llx\tshard %u\tfacts %llu as subject, %llu as object\n", r[i].text,
               (unsigned long long)r[i].id, (unsigned)(r[i].id % mm_memory_shards(c->m)),
               (unsigned long long)r[i].forward_copies, (unsigned long long)r[i].reverse_copies);
        for (size_t a = 0; a < r[i].naliases; a++)
            printf("  alias: %s\n", r[i].aliases[a]);
    }
    mm_entity_records_free(r, n);
    if (n == 0) {
        fprintf(stderr, "memllm memory entity: no entity named '%s'\n", c->args[0]);
        return 1;
    }
    return 0;
}
