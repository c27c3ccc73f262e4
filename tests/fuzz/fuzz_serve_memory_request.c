/* libFuzzer target: arbitrary bytes as the body of the memory API's
 * requests (queries, facts, edits). The parser must accept or refuse every
 * input without crashing or leaking; a refusal is a 400 (500 only when
 * memory runs out) with an error type and a message, and an accepted body
 * holds items whose texts the memory client takes. */
#include <stdlib.h>
#include <string.h>

#include "serve_memory_request.h"

static void check_refusal(const struct serve_error *e)
{
    if (!(e->status == 400 || e->status == 500) || !e->type || !e->message[0]) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;
    struct serve_error e;
    struct serve_memory_queries q;
    if (serve_memory_parse_queries(body, size, &q, &e)) {
        check_refusal(&e);
    } else {
        if (q.n < 1 || q.n > SERVE_MAX_QUERIES) abort();
        for (size_t i = 0; i < q.n; i++)
            if (!q.q[i].entity[0] || !q.q[i].relation[0] || !q.items[i]) abort();
        serve_memory_queries_free(&q);
    }
    struct serve_memory_facts f;
    if (serve_memory_parse_facts(body, size, &f, &e)) {
        check_refusal(&e);
    } else {
        if (f.n < 1 || f.n > SERVE_MAX_FACTS) abort();
        for (size_t i = 0; i < f.n; i++)
            if (!f.f[i].s[0] || !f.f[i].r[0] || !f.f[i].o[0] || !f.f[i].src.source) abort();
        serve_memory_facts_free(&f);
    }
    struct serve_memory_edits ed;
    if (serve_memory_parse_edits(body, size, &ed, &e)) {
        check_refusal(&e);
    } else {
        if (ed.n < 1 || ed.n > SERVE_MAX_FACTS) abort();
        for (int i = 0; i < ed.n; i++)
            if (ed.e[i].op > EDIT_DELETE || !ed.e[i].t.s[0] || !ed.e[i].t.o[0]) abort();
        serve_memory_edits_free(&ed);
    }
    return 0;
}
