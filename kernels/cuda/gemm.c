/* Row-major f32 products through cuBLAS, for the trainer: the transposes
 * each side needs are cuBLAS's operation flags, never copies. cuBLAS is
 * column-major, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T,
 * which is the same call with the operands swapped. The handle's default
 * math mode keeps full f32 (no TF32). */
#include "kc_internal.h"

int kc_gemm_f32(struct kc_ctx *c, int trans_a, int trans_b, int m, int n, int k, float alpha,
                const float *a, int lda, const float *b, int ldb, float beta, float *out, int ldc,
                struct mm_err *err)
{
    if (m <= 0 || n <= 0 || k <= 0) {
        mm_err_set(err, "f32 gemm: empty product %d x %d x %d", m, n, k);
        return -1;
    }
    cublasStatus_t s = cublasSgemm(c->blas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                                   trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, n, m, k, &alpha, b, ldb, a,
                                   lda, &beta, out, ldc);
    return kc_blas_ok(s, "f32 gemm", err);
}
