/* The SIMD levels this build has, best first, each ending with the portable
 * C code that is always compiled (and always tested against the others). */
#include "internal.h"

const struct k_qdot_impl *const k_qdot_impls[] = {
#ifdef K_HAVE_AVX512
    &k_qdot_avx512,
#endif
#ifdef K_HAVE_AVX2
    &k_qdot_avx2,
#endif
    &k_qdot_scalar,
};
const int k_qdot_impl_count = (int)(sizeof(k_qdot_impls) / sizeof(k_qdot_impls[0]));

const struct k_fdot_impl *const k_fdot_impls[] = {
#ifdef K_HAVE_AVX512
    &k_fdot_avx512,
#endif
#ifdef K_HAVE_AVX2
    &k_fdot_avx2,
#endif
    &k_fdot_scalar,
};
const int k_fdot_impl_count = (int)(sizeof(k_fdot_impls) / sizeof(k_fdot_impls[0]));
