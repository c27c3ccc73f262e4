/* Bytes in, bytes out: decodes a memllm.Request, runs its handler and
 * encodes the memllm.Response. Everything the response points to lives in
 * one arena, freed after packing. */
#include "shard_internal.h"

#include <stdlib.h>

/* Requests larger than this are refused before decoding: protects a shard
 * from a corrupt length or a hostile sender. */
#define MAX_REQUEST_BYTES (256u << 20)

static void run(struct mm_shard *sh, const Memllm__Request *req, Memllm__Response *resp,
                struct mm_arena *ar, struct shard_status *st)
{
    int rc = -1;
    Memllm__Request__CommandCase cmd = req->command_case;
    /* No database: a shard kept for a restore (its database could not be
     * opened), or a restore whose reopen failed (a full disk). A restore
     * replaces it; nothing else can run. */
    if (!sh->db && cmd != MEMLLM__REQUEST__COMMAND_HELLO &&
        cmd != MEMLLM__REQUEST__COMMAND_RESTORE && cmd != MEMLLM__REQUEST__COMMAND_SHUTDOWN) {
        if (sh->closed_why.msg[0])
            shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "%s", sh->closed_why.msg);
        else
            shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE,
                       "%s: the database is not open (a restore could not reopen it)", sh->dir);
        return;
    }
    if (cmd != MEMLLM__REQUEST__COMMAND_HELLO && !sh->configured && !sh->placed &&
        cmd != MEMLLM__REQUEST__COMMAND_SHUTDOWN) {
        shard_fail(st, MEMLLM__STATUS__STATUS_NOT_CONFIGURED,
                   "%s: shard has no place in a memory yet (send hello first)", sh->dir);
        return;
    }
#define RESULT(field, type, init, call)                                                            \
    do {                                                                                           \
        type *r = mm_arena_alloc(ar, sizeof(*r));                                                  \
        if (!r) {                                                                                  \
            shard_fail(st, MEMLLM__STATUS__STATUS_STORAGE, "out of memory");                       \
            return;                                                                                \
        }                                                                                          \
        init(r);                                                                                   \
        rc = call;                                                                                 \
        resp->field = r;                                                                           \
    } while (0)
    switch (req->command_case) {
    case MEMLLM__REQUEST__COMMAND_HELLO:
        RESULT(hello, Memllm__HelloResult, memllm__hello_result__init,
               shard_hello(sh, req->hello, r, st));
        resp->result_case = MEMLLM__RESPONSE__RESULT_HELLO;
        break;
    case MEMLLM__REQUEST__COMMAND_WRITE:
        RESULT(write, Memllm__WriteResult, memllm__write_result__init,
               shard_write(sh, req->write, r, ar, st));
        resp->result_case = MEMLLM__RESPONSE__RESULT_WRITE;
        break;
    case MEMLLM__REQUEST__COMMAND_DELETE:
        RESULT(delete_, Memllm__DeleteResult, memllm__delete_result__init,
               shard_delete(sh, req->delete_, r, st));
        resp->result_case = MEMLLM__RESPONSE__RESULT_DELETE;
        break;
    case MEMLLM__REQUEST__COMMAND_SEARCH:
        RESULT(search, Memllm__SearchResult, memllm__search_result__init,
               shard_search(sh, req->search, r, ar, st));
        resp->result_case = MEMLLM__RESPONSE__RESULT_SEARCH;
        break;
    case MEMLLM__REQUEST__COMMAND_QUERY:
        RESULT(query, Memllm__QueryResult, memllm__query_result__init,
               shard_query(sh, req->query, r, ar, st));
        resp->result_case = MEMLLM__RESPONSE__RESULT_QUERY;
        break;
    case MEMLLM__REQUEST__COMMAND_GET_ENTITY:
        RESULT(get_entity, Memllm__GetEntityResult, memllm__get_entity_result__init,
               shard_get_entity(sh, req->get_entity, r, ar, st));
        resp->result_case = MEMLLM__RESPONSE__RESULT_GET_ENTITY;
        break;
    case MEMLLM__REQUEST__COMMAND_SCAN:
        RESULT(scan, Memllm__ScanResult, memllm__scan_result__init,
               shard_scan(sh, req->scan, r, ar, st));
        resp->result_case = MEMLLM__RESPONSE__RESULT_SCAN;
        break;
    case MEMLLM__REQUEST__COMMAND_STATS:
        RESULT(stats, Memllm__StatsResult, memllm__stats_result__init, shard_stats(sh, r, ar, st));
        resp->result_case = MEMLLM__RESPONSE__RESULT_STATS;
        break;
    case MEMLLM__REQUEST__COMMAND_CHECKPOINT:
        RESULT(done, Memllm__Empty, memllm__empty__init,
               shard_checkpoint(sh, req->checkpoint->dir, st));
        resp->result_case = MEMLLM__RESPONSE__RESULT_DONE;
        break;
    case MEMLLM__REQUEST__COMMAND_RESTORE:
        RESULT(done, Memllm__Empty, memllm__empty__init, shard_restore(sh, req->restore->dir, st));
        resp->result_case = MEMLLM__RESPONSE__RESULT_DONE;
        break;
    case MEMLLM__REQUEST__COMMAND_SHUTDOWN:
        RESULT(done, Memllm__Empty, memllm__empty__init, 0);
        resp->result_case = MEMLLM__RESPONSE__RESULT_DONE;
        break;
    default:
        shard_fail(st, MEMLLM__STATUS__STATUS_BAD_MESSAGE, "request carries no known command");
        return;
    }
#undef RESULT
    if (rc != 0 && st->code == MEMLLM__STATUS__STATUS_OK) st->code = MEMLLM__STATUS__STATUS_STORAGE;
}

int mm_shard_handle(struct mm_shard *sh, const uint8_t *req, size_t req_len, uint8_t **resp,
                    size_t *resp_len)
{
    struct shard_status st = {0};
    struct mm_arena ar = {0};
    Memllm__Response r = MEMLLM__RESPONSE__INIT;
    Memllm__Request *q = NULL;
    if (req_len > MAX_REQUEST_BYTES)
        shard_fail(&st, MEMLLM__STATUS__STATUS_BAD_MESSAGE,
                   "request of %zu bytes is over the limit of %u", req_len, MAX_REQUEST_BYTES);
    else if (!(q = memllm__request__unpack(NULL, req_len, req)))
        shard_fail(&st, MEMLLM__STATUS__STATUS_BAD_MESSAGE,
                   "request of %zu bytes is not a valid memllm.Request", req_len);
    else
        run(sh, q, &r, &ar, &st);

    int shutdown = q && q->command_case == MEMLLM__REQUEST__COMMAND_SHUTDOWN;
    if (st.code != MEMLLM__STATUS__STATUS_OK) {
        /* Nothing of a failed command is reported but the error. */
        r.result_case = MEMLLM__RESPONSE__RESULT__NOT_SET;
        r.status = st.code;
        r.error = st.err.msg;
    }
    size_t n = memllm__response__get_packed_size(&r);
    uint8_t *buf = malloc(n ? n : 1);
    if (buf) memllm__response__pack(&r, buf);
    if (q) memllm__request__free_unpacked(q, NULL);
    mm_arena_free(&ar);
    if (!buf) return -1;
    *resp = buf;
    *resp_len = n;
    return shutdown;
}
