/* Reads the op fixtures that tools/make_op_fixtures.py writes under
 * $MEMLLM_FIXTURES/ops: index.json names each case's parameters and tensors,
 * each tensor a raw little-endian file. Test code: a missing or malformed
 * fixture stops the test with a message. */
#ifndef MEMLLM_TESTS_KERNELS_FIXTURE_H
#define MEMLLM_TESTS_KERNELS_FIXTURE_H

#include <stddef.h>

struct fx;

struct fx *fx_open(void);
void fx_close(struct fx *f);

/* Number of cases in the index and the name of case i (in index order). */
int fx_case_count(const struct fx *f);
const char *fx_case_name(const struct fx *f, int i);

/* A numeric parameter of a case. */
double fx_num(const struct fx *f, const char *name, const char *param);
int fx_int(const struct fx *f, const char *name, const char *param);
/* A string parameter of a case. */
const char *fx_str(const struct fx *f, const char *name, const char *param);

/* A tensor's bytes (malloc'd, free() them) and its element count. */
void *fx_tensor(const struct fx *f, const char *name, const char *tensor, size_t *count);

#endif
