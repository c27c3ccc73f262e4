/* libFuzzer target: arbitrary bytes as a shard request. The shard must
 * answer every input with a response that decodes, and never crash or leak.
 * It runs against a real shard (RocksDB in a scratch directory) that has had
 * its Hello, so valid-looking writes and queries reach the handlers.
 * Checkpoint and restore name file-system paths; the harness does not let
 * random paths reach the disk and only checks that they decode. */
#include "memory.pb-c.h"
#include "shard.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct mm_shard *shard;
static char dir[64];

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    mm_shard_close(shard);
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void start(void)
{
    snprintf(dir, sizeof(dir), "/tmp/memllm-fuzz-XXXXXX");
    struct mm_err err;
    if (!mkdtemp(dir) || !(shard = mm_shard_open(dir, NULL, &err))) abort();
    atexit(cleanup);
    /* Shard 0 of 1 with 4-dimensional vectors: small enough that fuzzed
     * vectors often have the right size. */
    Memllm__Hello h = MEMLLM__HELLO__INIT;
    h.shard_count = 1;
    h.embedder = "fuzz";
    h.dim = 4;
    Memllm__Request req = MEMLLM__REQUEST__INIT;
    req.command_case = MEMLLM__REQUEST__COMMAND_HELLO;
    req.hello = &h;
    uint8_t buf[64];
    size_t n = memllm__request__pack(&req, buf);
    uint8_t *resp;
    size_t resp_len;
    if (mm_shard_handle(shard, buf, n, &resp, &resp_len) < 0) abort();
    free(resp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!shard) start();
    Memllm__Request *req = memllm__request__unpack(NULL, size, data);
    int touches_disk = req && (req->command_case == MEMLLM__REQUEST__COMMAND_CHECKPOINT ||
                               req->command_case == MEMLLM__REQUEST__COMMAND_RESTORE);
    if (req) memllm__request__free_unpacked(req, NULL);
    if (touches_disk) return 0;
    uint8_t *resp;
    size_t resp_len;
    if (mm_shard_handle(shard, data, size, &resp, &resp_len) < 0) abort();
    Memllm__Response *r = memllm__response__unpack(NULL, resp_len, resp);
    if (!r) abort();
    /* A refused request says why. */
    if (r->status != MEMLLM__STATUS__STATUS_OK && r->error[0] == '\0') abort();
    memllm__response__free_unpacked(r, NULL);
    free(resp);
    return 0;
}
