#include "memllm_write_trace.h"

#include <jansson.h>

int mw_trace_write(FILE *f, const char *name, const struct mw_sentence_result *r,
                   struct mm_err *err)
{
    json_t *facts = json_array(), *cut_at = json_array(), *cut_score = json_array();
    for (int i = 0; facts && i < r->n_facts; i++)
        json_array_append_new(facts,
                              json_pack("[sss]", r->facts[i].s, r->facts[i].r, r->facts[i].o));
    for (int i = 0; cut_at && cut_score && i < r->cuts; i++) {
        json_array_append_new(cut_at, json_integer((json_int_t)r->cut_at[i]));
        json_array_append_new(cut_score, json_real(r->cut_score[i]));
    }
    /* "o" steals the arrays, also when json_pack fails. */
    json_t *line =
        json_pack("{s:s, s:i, s:s, s:s, s:o, s:i, s:i, s:o, s:o, s:i, s:s}", "doc", r->doc->id,
                  "sentence", r->sentence, "written", r->written, "generated", r->generated,
                  "facts", facts, "malformed", r->malformed, "cuts", r->cuts, "cut_at", cut_at,
                  "cut_score", cut_score, "tokens", r->tokens, "finish", r->finish);
    int bad =
        !line || json_dumpf(line, f, JSON_COMPACT | JSON_ENSURE_ASCII) || fputc('\n', f) == EOF;
    json_decref(line);
    if (bad) {
        mm_err_set(err, "%s: cannot write", name);
        return -1;
    }
    return 0;
}
