/* GET /health: whether the service can answer now, part by part.
 *
 * A probe runs on the engine thread (the only thread that may call MPI, and
 * the memory client's only user): it asks the pipeline stages for their
 * figures (under mpirun pipeline_mpi_stage_stats, a message that travels
 * every stage rank; in one process the stages are this thread's own code,
 * so that the probe runs at all is their answer), then each memory shard
 * alone for its counts (mm_memory_shard_stats), noting each part's answer
 * as it comes. The HTTP thread waits for the probe up to
 * --health-timeout: a rank that hangs (or an engine stuck in a step) never
 * answers, and a health check must still answer, 503, naming what did
 * not. The probe lives on until the engine thread has run it; later
 * checks join the probe in flight rather than queue more behind it.
 *
 *   {"status": "ok" | "unavailable" | "draining", "running", "queued",
 *    "stages": [{"stage", "layers": [first, end), "local", "status",
 *                ("micro_batches", "compute_seconds" under mpirun, when
 *                 no batch is in flight)}],
 *    "shards": [{"shard", "status", "entities", "triples"}],
 *    "error": the first part that failed}
 *
 * A part's status: "ok", "error" (it answered with one: "error" says it),
 * "no answer" (asked, silent past the timeout) or "not asked" (a part
 * before it has not answered). 200 only when every part is ok. */
#ifndef MEMLLM_COORDINATOR_SERVE_HEALTH_H
#define MEMLLM_COORDINATOR_SERVE_HEALTH_H

#include <microhttpd.h>

struct serve_http;

enum MHD_Result serve_health(struct serve_http *h, struct MHD_Connection *c);

#endif
