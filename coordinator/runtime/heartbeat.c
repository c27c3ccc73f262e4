#include "heartbeat.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "progress.h"

enum { BEAT = 1, LAST = 0 };
enum { TAG_BEAT = 301 };

/* What Open MPI takes to end a job across hosts once it is aborted: mpirun
 * and its daemons send each rank SIGCONT, SIGTERM (which stage and shard
 * ranks ignore, cli_args.c) and SIGKILL, a second apart
 * (odls_base_sigkill_timeout), then report back; measured 3.5-4.2 s. */
#define STOP_SECONDS 6.0

struct heartbeat {
    MPI_Comm comm;
    int size, n_stages;
    /* A rank is silent after `silent` seconds without a beat: three
     * quarters of the bound (as deploy/run-hosts.sh sets Open MPI's
     * keepalives), or less where the rest would leave Open MPI under
     * STOP_SECONDS to end the job, so that it has stopped within the bound;
     * never under half of it (a short bound on one host, where the job
     * ends at once, keeps room for a late beat). Beats come 6 times in
     * that span, at most once a second. */
    double bound, silent, interval;
    /* The coordinator's, per rank: its host, when its last beat came, and
     * whether that was its last. */
    char (*host)[MPI_MAX_PROCESSOR_NAME];
    double *seen;
    char *done;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop; /* under lock */
};

int heartbeat_bound(double *seconds, struct mm_err *err)
{
    const char *v = getenv("MEMLLM_FAIL_SECONDS");
    *seconds = 30;
    if (!v || !*v) return 0;
    char *end;
    errno = 0;
    double s = strtod(v, &end);
    if (errno || *end || !isfinite(s) || s < 0) {
        mm_err_set(err, "MEMLLM_FAIL_SECONDS=%s: not a number of seconds >= 0", v);
        return -1;
    }
    *seconds = s;
    return 0;
}

/* Sleeps `seconds` or until heartbeat_stop; returns h->stop. */
static int nap(struct heartbeat *h, double seconds)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    double at = (double)until.tv_sec + until.tv_nsec * 1e-9 + seconds;
    until.tv_sec = (time_t)at;
    until.tv_nsec = (long)((at - (double)until.tv_sec) * 1e9);
    pthread_mutex_lock(&h->lock);
    while (!h->stop && pthread_cond_timedwait(&h->wake, &h->lock, &until) == 0)
        ;
    int stop = h->stop;
    pthread_mutex_unlock(&h->lock);
    return stop;
}

static void *beat(void *arg)
{
    struct heartbeat *h = arg;
    int stop;
    do {
        stop = nap(h, h->interval);
        int msg = stop ? LAST : BEAT;
        MPI_Send(&msg, 1, MPI_INT, 0, TAG_BEAT, h->comm);
    } while (!stop);
    return NULL;
}

static void describe(const struct heartbeat *h, int rank, char *buf, size_t len)
{
    if (rank <= h->n_stages)
        snprintf(buf, len, "stage %d (rank %d on host %s)", rank - 1, rank, h->host[rank]);
    else
        snprintf(buf, len, "memory shard %d (rank %d on host %s)", rank - 1 - h->n_stages, rank,
                 h->host[rank]);
}

/* The coordinator's watch: takes the beats as they come (polling: the
 * thread must also notice silence) and stops the job on a silent rank.
 * Once stopping, it waits for every rank's last beat, under the same
 * watch. */
static void *watch(void *arg)
{
    struct heartbeat *h = arg;
    double *seen = h->seen, now = progress_now();
    char *done = h->done;
    for (int r = 0; r < h->size; r++)
        seen[r] = now;
    int left = h->size - 1, stopping = 0;
    while (left > 0) {
        int ready = 1;
        while (ready) {
            MPI_Status st;
            MPI_Iprobe(MPI_ANY_SOURCE, TAG_BEAT, h->comm, &ready, &st);
            if (!ready) break;
            int msg;
            MPI_Recv(&msg, 1, MPI_INT, st.MPI_SOURCE, TAG_BEAT, h->comm, MPI_STATUS_IGNORE);
            seen[st.MPI_SOURCE] = progress_now();
            if (msg == LAST && !done[st.MPI_SOURCE]) {
                done[st.MPI_SOURCE] = 1;
                left--;
            }
        }
        now = progress_now();
        for (int r = 1; r < h->size; r++) {
            if (done[r] || now - seen[r] <= h->silent) continue;
            char who[2 * MPI_MAX_PROCESSOR_NAME];
            describe(h, r, who, sizeof(who));
            fprintf(stderr,
                    "memllm: %s has not answered for %.0f s (stopped or hung; "
                    "MEMLLM_FAIL_SECONDS=%g): stopping the job\n",
                    who, now - seen[r], h->bound);
            fflush(stderr);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        /* Seconds matter here, not milliseconds: polling 20 times a second
         * keeps the thread off the MPI progress engine the main thread
         * uses. */
        if (!stopping)
            stopping = nap(h, 0.05);
        else if (left > 0) {
            struct timespec pause = {0, 50000000};
            nanosleep(&pause, NULL);
        }
    }
    return NULL;
}

static void heartbeat_free(struct heartbeat *h)
{
    if (!h) return;
    pthread_cond_destroy(&h->wake);
    pthread_mutex_destroy(&h->lock);
    free(h->host);
    free(h->seen);
    free(h->done);
    free(h);
}

int heartbeat_start(MPI_Comm comm, int n_stages, double bound, struct heartbeat **out,
                    struct mm_err *err)
{
    int level, size, rank;
    *out = NULL;
    MPI_Comm_size(comm, &size);
    MPI_Comm_rank(comm, &rank);
    MPI_Bcast(&bound, 1, MPI_DOUBLE, 0, comm);
    if (bound < 0) {
        /* The coordinator's err says what is wrong with its setting. */
        if (rank != 0) mm_err_set(err, "the coordinator's MEMLLM_FAIL_SECONDS is wrong");
        return -1;
    }
    /* A rank told MEMLLM_FAIL_SECONDS=0 started MPI without threads
     * (cluster.c): then no rank beats. */
    MPI_Query_thread(&level);
    MPI_Allreduce(MPI_IN_PLACE, &level, 1, MPI_INT, MPI_MIN, comm);
    if (bound == 0 || size < 2) return 0;
    if (level < MPI_THREAD_MULTIPLE) {
        if (rank == 0)
            fprintf(stderr, "memllm: this MPI runs no threads beside the main one: ranks that "
                            "stop answering are not watched\n");
        return 0;
    }
    struct heartbeat *h = calloc(1, sizeof(*h));
    if (h) {
        /* Naps measured on the monotonic clock: a change of the wall clock
         * must not wake a rank late or its watch early. */
        pthread_condattr_t attr;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        pthread_mutex_init(&h->lock, NULL);
        pthread_cond_init(&h->wake, &attr);
        pthread_condattr_destroy(&attr);
    }
    if (h && rank == 0) {
        h->host = calloc((size_t)size, sizeof(*h->host));
        h->seen = calloc((size_t)size, sizeof(*h->seen));
        h->done = calloc((size_t)size, 1);
    }
    int ok = h && (rank != 0 || (h->host && h->seen && h->done));
    char name[MPI_MAX_PROCESSOR_NAME] = {0};
    int len;
    MPI_Get_processor_name(name, &len);
    /* Every rank takes part in the collectives even if its allocation
     * failed; then all give up together. */
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, comm);
    if (!ok) {
        heartbeat_free(h);
        mm_err_set(err, "out of memory");
        return -1;
    }
    MPI_Gather(name, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, h->host, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, 0,
               comm);
    /* An MPI error on it is fatal to the job, as on the job's own (MPI's
     * default handler, which the duplicate inherits). */
    MPI_Comm_dup(comm, &h->comm);
    h->size = size;
    h->n_stages = n_stages;
    h->bound = bound;
    h->silent = fmax(0.5 * bound, fmin(0.75 * bound, bound - STOP_SECONDS));
    h->interval = fmin(1.0, h->silent / 6);
    int rc = pthread_create(&h->thread, NULL, rank == 0 ? watch : beat, h);
    if (rc) {
        /* The other ranks have started theirs: without this one the job
         * would be stopped for want of its beats, or not be watched. */
        fprintf(stderr, "memllm: rank %d: cannot start its heartbeat thread: %s\n", rank,
                strerror(rc));
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    *out = h;
    return 0;
}

void heartbeat_stop(struct heartbeat *h)
{
    if (!h) return;
    pthread_mutex_lock(&h->lock);
    h->stop = 1;
    pthread_cond_signal(&h->wake);
    pthread_mutex_unlock(&h->lock);
    pthread_join(h->thread, NULL);
    MPI_Comm_free(&h->comm);
    heartbeat_free(h);
}
