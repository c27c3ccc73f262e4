/* The generated Unicode tables (coordinator/tokenizer/unicode_tables.c, written by
 * tools/make_unicode_tables.py). Use them through unicode.h. */
#ifndef MEMLLM_COORDINATOR_UNICODE_TABLES_H
#define MEMLLM_COORDINATOR_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

extern const char uni_tables_version[];

/* General category: entry i is (start << 5 | category); range i covers the
 * code points from its start up to the next entry's start. */
extern const size_t uni_n_category_ranges;
extern const uint32_t uni_category_ranges[];

/* {code point, its lowercase} for single code point lowercase mappings. */
extern const size_t uni_n_lower;
extern const uint32_t uni_lower_map[][2];

/* {code point, offset, length}: the full canonical decomposition of the code
 * point is uni_nfd_data[offset .. offset + length). Hangul excluded. */
extern const size_t uni_n_nfd;
extern const uint32_t uni_nfd_index[][3];
extern const uint32_t uni_nfd_data[];

/* {first, last, class}: canonical combining classes other than 0. */
extern const size_t uni_n_ccc;
extern const uint32_t uni_ccc_ranges[][3];

#endif
