/* The CUDA context (device, stream, cuBLAS handle, workspace), device and
 * pinned memory, transfers, and the translation of CUDA and cuBLAS status
 * codes into struct mm_err messages. */
#include <stdlib.h>

#include "kc_internal.h"

int kc_cuda_ok(cudaError_t e, const char *what, struct mm_err *err)
{
    if (e == cudaSuccess) return 0;
    mm_err_set(err, "cuda: %s: %s (%s)", what, cudaGetErrorString(e), cudaGetErrorName(e));
    return -1;
}

int kc_blas_ok(cublasStatus_t s, const char *what, struct mm_err *err)
{
    if (s == CUBLAS_STATUS_SUCCESS) return 0;
    mm_err_set(err, "cublas: %s: %s", what, cublasGetStatusString(s));
    return -1;
}

int kc_launched(const char *what, struct mm_err *err)
{
    return kc_cuda_ok(cudaGetLastError(), what, err);
}

int kc_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear it: the caller only asked */
        return 0;
    }
    return n;
}

struct kc_ctx *kc_ctx_create(int device, struct mm_err *err)
{
    int count = 0;
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        cudaGetLastError();
        kc_cuda_ok(e, "no usable CUDA device", err);
        return NULL;
    }
    if (device < 0 || device >= count) {
        mm_err_set(err, "cuda: device %d does not exist (%d device%s)", device, count,
                   count == 1 ? "" : "s");
        return NULL;
    }
    struct kc_ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        mm_err_set(err, "cuda: out of host memory for a context");
        return NULL;
    }
    c->device = device;
    c->numerics = KC_NUMERICS_INVARIANT;
    int sms = 0, smem = 0;
    if (kc_cuda_ok(cudaSetDevice(device), "select the device", err) ||
        kc_cuda_ok(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device),
                   "read the multiprocessor count", err) ||
        kc_cuda_ok(cudaDeviceGetAttribute(&smem, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
                   "read the shared memory limit", err) ||
        kc_cuda_ok(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "create a stream",
                   err)) {
        free(c);
        return NULL;
    }
    c->sm_count = sms;
    c->smem_optin = (size_t)smem;
    if (kc_blas_ok(cublasCreate(&c->blas), "create a handle", err)) {
        c->blas = NULL;
        kc_ctx_free(c);
        return NULL;
    }
    if (kc_blas_ok(cublasSetStream(c->blas, c->stream), "bind the stream", err)) {
        kc_ctx_free(c);
        return NULL;
    }
    return c;
}

void kc_ctx_free(struct kc_ctx *c)
{
    if (!c) return;
    /* Teardown cannot report: a failure here leaves nothing to recover. */
    if (c->stream) cudaStreamSynchronize(c->stream);
    if (c->blas) cublasDestroy(c->blas);
    cudaFree(c->work);
    if (c->stream) cudaStreamDestroy(c->stream);
    free(c);
}

cudaStream_t kc_ctx_stream(const struct kc_ctx *c)
{
    return c->stream;
}

void kc_ctx_set_numerics(struct kc_ctx *c, enum kc_numerics numerics)
{
    c->numerics = numerics;
}

enum kc_numerics kc_ctx_numerics(const struct kc_ctx *c)
{
    return c->numerics;
}

int kc_ctx_device(const struct kc_ctx *c)
{
    return c->device;
}

int kc_sync(struct kc_ctx *c, struct mm_err *err)
{
    return kc_cuda_ok(cudaStreamSynchronize(c->stream), "running kernels", err);
}

void *kc_workspace(struct kc_ctx *c, size_t bytes, struct mm_err *err)
{
    if (bytes <= c->work_bytes) return c->work;
    /* Grow by half again at least, so that a growing batch reallocates a few
     * times, not at every step. cudaFree waits for the kernels that use the
     * old buffer. */
    size_t want = c->work_bytes + c->work_bytes / 2;
    if (want < bytes) want = bytes;
    want = (want + 255) & ~(size_t)255;
    if (kc_cuda_ok(cudaFree(c->work), "free the workspace", err)) return NULL;
    c->work = NULL;
    c->work_bytes = 0;
    if (kc_cuda_ok(cudaMalloc(&c->work, want), "allocate the workspace", err)) {
        c->work = NULL;
        mm_err_prefix(err, "%zu bytes", want);
        return NULL;
    }
    c->work_bytes = want;
    return c->work;
}

void *kc_alloc(size_t bytes, struct mm_err *err)
{
    void *p = NULL;
    if (kc_cuda_ok(cudaMalloc(&p, bytes ? bytes : 1), "allocate device memory", err)) {
        mm_err_prefix(err, "%zu bytes", bytes);
        return NULL;
    }
    return p;
}

void kc_free(void *dev)
{
    if (dev) cudaFree(dev);
}

void *kc_host_alloc(size_t bytes, struct mm_err *err)
{
    void *p = NULL;
    if (kc_cuda_ok(cudaMallocHost(&p, bytes ? bytes : 1), "allocate pinned host memory", err)) {
        mm_err_prefix(err, "%zu bytes", bytes);
        return NULL;
    }
    return p;
}

void kc_host_free(void *host)
{
    if (host) cudaFreeHost(host);
}

int kc_upload(struct kc_ctx *c, void *dev, const void *host, size_t bytes, struct mm_err *err)
{
    if (bytes == 0) return 0;
    return kc_cuda_ok(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, c->stream),
                      "copy to the device", err);
}

int kc_download(struct kc_ctx *c, void *host, const void *dev, size_t bytes, struct mm_err *err)
{
    if (bytes && kc_cuda_ok(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, c->stream),
                            "copy from the device", err))
        return -1;
    return kc_sync(c, err);
}

int kc_copy(struct kc_ctx *c, void *dst, const void *src, size_t bytes, struct mm_err *err)
{
    if (bytes == 0) return 0;
    return kc_cuda_ok(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, c->stream),
                      "copy on the device", err);
}

int kc_zero(struct kc_ctx *c, void *dev, size_t bytes, struct mm_err *err)
{
    if (bytes == 0) return 0;
    return kc_cuda_ok(cudaMemsetAsync(dev, 0, bytes, c->stream), "zero device memory", err);
}

int kc_matrix_upload(struct kc_ctx *c, struct kc_matrix *dst, const struct k_matrix *src,
                     struct mm_err *err)
{
    size_t bytes = src->row_bytes * (size_t)src->rows;
    void *data = kc_alloc(bytes, err);
    if (!data) return -1;
    if (kc_upload(c, data, src->data, bytes, err)) {
        kc_free(data);
        return -1;
    }
    *dst = (struct kc_matrix){.dtype = src->dtype,
                              .rows = src->rows,
                              .cols = src->cols,
                              .row_bytes = src->row_bytes,
                              .data = data};
    return 0;
}

void kc_matrix_free(struct kc_matrix *m)
{
    kc_free((void *)m->data);
    m->data = NULL;
}
