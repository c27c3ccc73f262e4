#include "unicode.h"

#include "unicode_tables.h"

/* Returns the sequence length a lead byte announces and the bounds its
 * second byte must lie in (RFC 3629 table: these bounds exclude overlong
 * forms, surrogates and values above U+10FFFF). 0 for a byte that cannot
 * start a sequence. */
static size_t lead_info(uint8_t b, uint8_t *lo, uint8_t *hi)
{
    *lo = 0x80;
    *hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b == 0xE0) {
        *lo = 0xA0;
        return 3;
    }
    if (b >= 0xE1 && b <= 0xEC) return 3;
    if (b == 0xED) {
        *hi = 0x9F;
        return 3;
    }
    if (b >= 0xEE && b <= 0xEF) return 3;
    if (b == 0xF0) {
        *lo = 0x90;
        return 4;
    }
    if (b >= 0xF1 && b <= 0xF3) return 4;
    if (b == 0xF4) {
        *hi = 0x8F;
        return 4;
    }
    return 0;
}

size_t uni_decode(const uint8_t *s, size_t n, uint32_t *cp)
{
    uint8_t b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    uint8_t lo, hi;
    size_t len = lead_info(b, &lo, &hi);
    if (len == 0 || len > n || s[1] < lo || s[1] > hi) {
        *cp = UNI_INVALID;
        return 1;
    }
    uint32_t v = b & (0xFF >> (len + 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = UNI_INVALID;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

int uni_is_incomplete(const uint8_t *s, size_t n)
{
    uint8_t lo, hi;
    size_t len = lead_info(s[0], &lo, &hi);
    if (len == 0 || n >= len) return 0;
    if (n >= 2 && (s[1] < lo || s[1] > hi)) return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    return 1;
}

size_t uni_encode(uint32_t cp, char out[4])
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

enum uni_category uni_category(uint32_t cp)
{
    if (cp > 0x10FFFF) return UNI_CN;
    /* Last range whose start is <= cp; range 0 starts at 0. */
    size_t lo = 0, hi = uni_n_category_ranges;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if ((uni_category_ranges[mid] >> 5) <= cp)
            lo = mid;
        else
            hi = mid;
    }
    return (enum uni_category)(uni_category_ranges[lo] & 31);
}

int uni_is_number(uint32_t cp)
{
    if (cp < 0x80) return cp >= '0' && cp <= '9';
    return uni_cat_is_number(uni_category(cp));
}

int uni_is_space(uint32_t cp)
{
    /* PropList.txt, White_Space; unchanged since Unicode 6.3. */
    switch (cp) {
    case 0x09:
    case 0x0A:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x20:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2000:
    case 0x2001:
    case 0x2002:
    case 0x2003:
    case 0x2004:
    case 0x2005:
    case 0x2006:
    case 0x2007:
    case 0x2008:
    case 0x2009:
    case 0x200A:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
        return 1;
    default:
        return 0;
    }
}

int uni_tolower(uint32_t cp, uint32_t out[2])
{
    if (cp < 0x80) {
        out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
        return 1;
    }
    if (cp == 0x130) { /* the only multi code point lowercase mapping */
        out[0] = 'i';
        out[1] = 0x307;
        return 2;
    }
    size_t lo = 0, hi = uni_n_lower;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (uni_lower_map[mid][0] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    out[0] = (lo < uni_n_lower && uni_lower_map[lo][0] == cp) ? uni_lower_map[lo][1] : cp;
    return 1;
}

/* Hangul syllables decompose arithmetically (Unicode 3.12). */
enum {
    HANGUL_S_BASE = 0xAC00,
    HANGUL_L_BASE = 0x1100,
    HANGUL_V_BASE = 0x1161,
    HANGUL_T_BASE = 0x11A7,
    HANGUL_T_COUNT = 28,
    HANGUL_N_COUNT = 21 * 28,
    HANGUL_S_COUNT = 19 * 21 * 28,
};

static int uni_decompose(uint32_t cp, uint32_t out[UNI_MAX_DECOMP])
{
    if (cp < 0xC0) {
        out[0] = cp;
        return 1;
    }
    if (cp >= HANGUL_S_BASE && cp < HANGUL_S_BASE + HANGUL_S_COUNT) {
        uint32_t s = cp - HANGUL_S_BASE;
        out[0] = HANGUL_L_BASE + s / HANGUL_N_COUNT;
        out[1] = HANGUL_V_BASE + (s % HANGUL_N_COUNT) / HANGUL_T_COUNT;
        uint32_t t = s % HANGUL_T_COUNT;
        if (t == 0) return 2;
        out[2] = HANGUL_T_BASE + t;
        return 3;
    }
    size_t lo = 0, hi = uni_n_nfd;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (uni_nfd_index[mid][0] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == uni_n_nfd || uni_nfd_index[lo][0] != cp) {
        out[0] = cp;
        return 1;
    }
    uint32_t off = uni_nfd_index[lo][1], len = uni_nfd_index[lo][2];
    for (uint32_t i = 0; i < len; i++)
        out[i] = uni_nfd_data[off + i];
    return (int)len;
}

static int uni_combining_class(uint32_t cp)
{
    if (cp < 0x300) return 0;
    size_t lo = 0, hi = uni_n_ccc;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (uni_ccc_ranges[mid][1] < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < uni_n_ccc && uni_ccc_ranges[lo][0] <= cp) return (int)uni_ccc_ranges[lo][2];
    return 0;
}

size_t uni_nfd(const uint32_t *cps, size_t n, uint32_t *out, size_t cap)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t d[UNI_MAX_DECOMP];
        int nd = uni_decompose(cps[i], d);
        for (int j = 0; j < nd && k < cap; j++)
            out[k++] = d[j];
    }
    /* Canonical ordering: a stable insertion sort of each run of non-starters
     * by combining class. Runs are short, so this is linear in practice. */
    for (size_t i = 1; i < k; i++) {
        int ci = uni_combining_class(out[i]);
        if (ci == 0) continue;
        size_t j = i;
        uint32_t v = out[i];
        while (j > 0) {
            int cj = uni_combining_class(out[j - 1]);
            if (cj == 0 || cj <= ci) break;
            out[j] = out[j - 1];
            j--;
        }
        out[j] = v;
    }
    return k;
}

const char *uni_version(void)
{
    return uni_tables_version;
}
