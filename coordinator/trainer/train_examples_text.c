/* The plain-text baseline's examples: each document's text, every token a
 * target, no API call (MemLLM's comparison: the same LoRA finetuned on the
 * same documents without the memory, so that what the memory buys is
 * separated from what finetuning on the text buys). */
#include <stdlib.h>
#include <string.h>

#include "train_examples_doc.h"

/* The sentences joined by spaces, as the MW and MR examples join them. */
static char *document_text(const struct doc *d)
{
    size_t len = 1;
    for (int s = 0; s < d->n_sents; s++)
        len += strlen(d->sents[s]) + 1;
    char *text = malloc(len), *at = text;
    if (!text) return NULL;
    for (int s = 0; s < d->n_sents; s++) {
        size_t n = strlen(d->sents[s]);
        if (s) *at++ = ' ';
        memcpy(at, d->sents[s], n);
        at += n;
    }
    *at = 0;
    return text;
}

int examples_text(FILE *out, json_t *doc, size_t index, const struct examples_options *o,
                  struct examples_counts *c, struct mm_err *err)
{
    struct doc d;
    if (doc_read(&d, doc, err)) return -1;
    int rc = -1;
    char *text = document_text(&d);
    json_t *segs = text ? json_pack("[{s:s, s:b}]", "text", text, "loss", 1) : NULL;
    free(text);
    if (!segs) {
        mm_err_set(err, "out of memory");
        goto done;
    }
    int64_t tokens = 0;
    int put = put_example(out, "text", index, json_string_value(json_object_get(doc, "title")),
                          segs, o, &tokens, err);
    if (put < 0) goto done;
    c->documents++;
    c->too_long += put == 0;
    c->examples += put == 1;
    c->tokens += put == 1 ? tokens : 0;
    rc = 0;
done:
    doc_free(&d);
    return rc;
}
