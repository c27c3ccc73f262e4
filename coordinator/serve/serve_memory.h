/* The memory API of memllm serve (JSON in and out; errors as
 * {"error": {"message", "type"}}):
 *
 *   POST   /v1/memory/query             {"queries": ["s>>r>>", ">>r>>o"]}: each
 *                                       query's answers with score and provenance
 *                                       (as `memllm memory query`)            read
 *   POST   /v1/memory/facts             {"facts": [...]}: store them          write
 *   DELETE /v1/memory/facts             {"facts": [...]}: remove them         write
 *   PUT    /v1/memory/facts             {"facts": [...]}: each replaces
 *                                       every (s, r, *)                       write
 *   GET    /v1/memory/entities/{name}   the entities named or aliased so,
 *                                       each with its facts and their
 *                                       provenance (its home shard's copies) read
 *   GET    /v1/memory/stats             the memory's counts                   read
 *   POST   /v1/memory/edits             {"edits": [{"op", "fact"}]}: one
 *                                       `memllm edit` batch (edit_apply), its
 *                                       id back                               write
 *   POST   /v1/memory/edits/{id}/undo   `memllm edit --undo id`               write
 *   POST   /v1/memory/annotate          {"documents": [{"id", "text"}], "model",
 *                                        "max_tokens"}:
 *                                       the write loop over them as a
 *                                       background job (serve_annotate.h);
 *                                       202 with its id                       write
 *   GET    /v1/memory/annotate/{id}     the job's status and progress         read
 *
 * (bodies: serve_memory_request.h). With keys, a read-only key gets 403 on
 * the write routes.
 *
 * Why every memory operation runs on the engine thread (submitted with
 * serve_queue_memop, run between scheduler steps) rather than under a
 * lock on the HTTP threads: the memory client is not thread-safe (the
 * embedder's scratch buffers, the shards' RocksDB batches and, under
 * mpirun, MPI messages to the shard ranks, with MPI initialised without
 * thread support so only the thread that runs the engine may call it), and
 * the engine thread's own memory reads (the MemLLM read loop) run there
 * already. One thread for all of it serialises them with no lock and stays
 * right when the shards are ranks. An operation waits at most one
 * decoding step (serve_engine.c runs them between steps and between
 * tokens). */
#ifndef MEMLLM_COORDINATOR_SERVE_MEMORY_H
#define MEMLLM_COORDINATOR_SERVE_MEMORY_H

#include <microhttpd.h>

struct serve_http;
struct conn;

/* Whether url (under /v1/memory/) with this method changes the memory:
 * 1 write, 0 read, -1 no such route. */
int serve_memory_route_writes(const char *url, const char *method);

/* Answers a memory route (url under /v1/memory/). */
enum MHD_Result serve_memory(struct serve_http *h, struct MHD_Connection *c, struct conn *cn,
                             const char *url, const char *method);

#endif
