#include "triple_text.h"
#include "text.h"

#include <stdlib.h>
#include <string.h>

static char *trimmed_copy(const char *begin, const char *end)
{
    while (begin < end && (*begin == ' ' || *begin == '\t'))
        begin++;
    while (end > begin && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    char *s = malloc((size_t)(end - begin) + 1);
    if (!s) return NULL;
    memcpy(s, begin, (size_t)(end - begin));
    s[end - begin] = '\0';
    return s;
}

/* Splits at the two ">>" separators; parts may be empty. */
static int split(const char *item, struct mm_triple_text *t, const char *form, struct mm_err *err)
{
    char ex[200];
    memset(t, 0, sizeof(*t));
    const char *a = strstr(item, ">>");
    const char *b = a ? strstr(a + 2, ">>") : NULL;
    if (!a || !b || strstr(b + 2, ">>")) {
        mm_err_set(err, "'%s': expected %s (two '>>')", mm_text_excerpt(item, ex, sizeof(ex)),
                   form);
        return -1;
    }
    t->s = trimmed_copy(item, a);
    t->r = trimmed_copy(a + 2, b);
    t->o = trimmed_copy(b + 2, item + strlen(item));
    if (!t->s || !t->r || !t->o) {
        mm_triple_text_free(t);
        mm_err_set(err, "out of memory");
        return -1;
    }
    return 0;
}

static int check_part(const char *item, const char *what, const char *part, struct mm_err *err)
{
    if (mm_text_check(what, part, err) == 0) return 0;
    char ex[200];
    mm_err_prefix(err, "'%s'", mm_text_excerpt(item, ex, sizeof(ex)));
    return -1;
}

int mm_triple_parse(const char *item, struct mm_triple_text *t, struct mm_err *err)
{
    if (split(item, t, "subject>>relation>>object", err) != 0) return -1;
    if (check_part(item, "subject", t->s, err) != 0 ||
        check_part(item, "relation", t->r, err) != 0 ||
        check_part(item, "object", t->o, err) != 0) {
        mm_triple_text_free(t);
        return -1;
    }
    return 0;
}

int mm_query_parse(const char *item, struct mm_triple_text *t, int *want_subject,
                   struct mm_err *err)
{
    const char *form = "subject>>relation>> or >>relation>>object";
    if (split(item, t, form, err) != 0) return -1;
    char ex[200];
    int has_s = t->s[0] != '\0', has_o = t->o[0] != '\0';
    if (has_s == has_o) {
        mm_err_set(err, "'%s': exactly one of subject and object must be given (%s)",
                   mm_text_excerpt(item, ex, sizeof(ex)), form);
        mm_triple_text_free(t);
        return -1;
    }
    *want_subject = !has_s;
    if (check_part(item, "relation", t->r, err) != 0 ||
        check_part(item, has_s ? "subject" : "object", has_s ? t->s : t->o, err) != 0) {
        mm_triple_text_free(t);
        return -1;
    }
    return 0;
}

void mm_triple_text_free(struct mm_triple_text *t)
{
    free(t->s);
    free(t->r);
    free(t->o);
    memset(t, 0, sizeof(*t));
}
