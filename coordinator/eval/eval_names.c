#include "eval_names.h"

#include <ctype.h>

int eval_same_name(const char *a, const char *b)
{
    for (;;) {
        while (isspace((unsigned char)*a))
            a++;
        while (isspace((unsigned char)*b))
            b++;
        if (!*a || !*b) return !*a && !*b;
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
        a++;
        b++;
    }
}

size_t eval_name_prefix(const char *text, const char *name)
{
    const char *t = text;
    for (;;) {
        while (isspace((unsigned char)*name))
            name++;
        if (!*name) break;
        while (isspace((unsigned char)*t))
            t++;
        if (!*t || tolower((unsigned char)*t) != tolower((unsigned char)*name)) return 0;
        t++;
        name++;
    }
    if (t == text || isalnum((unsigned char)*t)) return 0;
    return (size_t)(t - text);
}
