/* The Unicode the tokenizers need: UTF-8 decoding that never fails, general
 * categories, White_Space, lowercase and canonical decomposition (NFD).
 *
 * The data comes from Python's unicodedata through the generated
 * unicode_tables.c (tools/make_unicode_tables.py). */
#ifndef MEMLLM_COORDINATOR_UNICODE_H
#define MEMLLM_COORDINATOR_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* What uni_decode returns for a byte that does not start a valid UTF-8
 * sequence. It is not a code point (above U+10FFFF), so callers can keep the
 * original byte instead of replacing it. */
#define UNI_INVALID 0xFFFFFFFFu
#define UNI_REPLACEMENT 0xFFFDu

/* General categories, in the order of tools/make_unicode_tables.py. */
enum uni_category {
    UNI_LU,
    UNI_LL,
    UNI_LT,
    UNI_LM,
    UNI_LO,
    UNI_MN,
    UNI_MC,
    UNI_ME,
    UNI_ND,
    UNI_NL,
    UNI_NO,
    UNI_PC,
    UNI_PD,
    UNI_PS,
    UNI_PE,
    UNI_PI,
    UNI_PF,
    UNI_PO,
    UNI_SM,
    UNI_SC,
    UNI_SK,
    UNI_SO,
    UNI_ZS,
    UNI_ZL,
    UNI_ZP,
    UNI_CC,
    UNI_CF,
    UNI_CS,
    UNI_CO,
    UNI_CN,
};

/* Decodes the UTF-8 sequence at s[0..n) (n >= 1) into *cp and returns its
 * length. A byte that does not begin a well-formed sequence (overlong forms,
 * surrogates and values above U+10FFFF included) gives *cp = UNI_INVALID
 * and length 1. */
size_t uni_decode(const uint8_t *s, size_t n, uint32_t *cp);

/* Writes the UTF-8 form of cp (<= U+10FFFF) to out and returns its length. */
size_t uni_encode(uint32_t cp, char out[4]);

/* Whether s[0..n) is a prefix of a well-formed sequence that more bytes could
 * complete (used to hold back a streaming tail). */
int uni_is_incomplete(const uint8_t *s, size_t n);

/* UNI_INVALID has category Cn (unassigned). */
enum uni_category uni_category(uint32_t cp);

static inline int uni_cat_is_letter(enum uni_category c)
{
    return c <= UNI_LO;
}
static inline int uni_cat_is_mark(enum uni_category c)
{
    return c >= UNI_MN && c <= UNI_ME;
}
static inline int uni_cat_is_number(enum uni_category c)
{
    return c >= UNI_ND && c <= UNI_NO;
}
static inline int uni_cat_is_punct(enum uni_category c)
{
    return c >= UNI_PC && c <= UNI_PO;
}
static inline int uni_cat_is_other(enum uni_category c)
{
    return c >= UNI_CC;
}

int uni_is_number(uint32_t cp);
/* The White_Space property (regex \s in Rust, Oniguruma and Python's regex). */
int uni_is_space(uint32_t cp);

/* Lowercase of one code point (str.lower / char::to_lowercase): writes 1 or
 * 2 code points to out and returns how many. */
int uni_tolower(uint32_t cp, uint32_t out[2]);

/* The longest canonical decomposition of one code point. */
#define UNI_MAX_DECOMP 4

/* NFD of a code point buffer: decomposes into out (capacity cap, at least
 * UNI_MAX_DECOMP * n) and puts combining marks in canonical order. Returns
 * the number of code points written. Values above U+10FFFF pass through
 * unchanged. */
size_t uni_nfd(const uint32_t *cps, size_t n, uint32_t *out, size_t cap);

/* The Unicode version of the tables. */
const char *uni_version(void);

#endif
