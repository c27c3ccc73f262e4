/* Runs a program (no shell) with optional stdin text, capturing stdout and
 * stderr, for tests of the memllm command line. */
#ifndef MEMLLM_TESTS_RUN_CMD_H
#define MEMLLM_TESTS_RUN_CMD_H

#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "read_file.h"

extern char **environ;

struct cmd_result {
    int status; /* exit code, or 128 + signal */
    char *out, *err;
};

/* Output goes through temporary files, not pipes: no deadlock however much
 * the program writes. */
static inline struct cmd_result run_cmd(char *const argv[], const char *input)
{
    FILE *in = tmpfile(), *out = tmpfile(), *err = tmpfile();
    if (input) fputs(input, in);
    fflush(in);
    rewind(in);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fileno(in), 0);
    posix_spawn_file_actions_adddup2(&fa, fileno(out), 1);
    posix_spawn_file_actions_adddup2(&fa, fileno(err), 2);
    pid_t pid;
    struct cmd_result r = {.status = -1};
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) == 0) {
        int ws;
        waitpid(pid, &ws, 0);
        r.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    }
    posix_spawn_file_actions_destroy(&fa);
    r.out = read_stream(out, NULL);
    r.err = read_stream(err, NULL);
    REQUIRE(r.out && r.err, "cannot read the output of %s", argv[0]);
    fclose(in);
    fclose(out);
    fclose(err);
    return r;
}

static inline void cmd_result_free(struct cmd_result *r)
{
    free(r->out);
    free(r->err);
}

/* The most arguments memllm_argv puts together. */
#define MEMLLM_ARGV_MAX 128

/* argv for [env ASAN_OPTIONS=detect_leaks=0 MPIRUN --oversubscribe
 * --allow-run-as-root -np RANKS] BIN HEAD... TAIL..., RANKS 0 meaning no
 * mpirun; head and tail are NULL-ended lists (either may be NULL). Open
 * MPI's start-up allocations read as leaks under sanitizers, hence the
 * ASAN_OPTIONS of mpirun runs. np holds the rank count's digits. The one
 * launcher of the tests that run the binary. */
static inline void memllm_argv(char **argv, const char *mpirun, const char *bin, int ranks,
                               const char *const *head, const char *const *tail, char np[16])
{
    int n = 0;
    if (ranks > 0) {
        argv[n++] = "/usr/bin/env";
        argv[n++] = "ASAN_OPTIONS=detect_leaks=0";
        argv[n++] = (char *)mpirun;
        argv[n++] = "--oversubscribe";
        argv[n++] = "--allow-run-as-root";
        argv[n++] = "-np";
        snprintf(np, 16, "%d", ranks);
        argv[n++] = np;
    }
    argv[n++] = (char *)bin;
    for (int i = 0; head && head[i] && n < MEMLLM_ARGV_MAX - 1; i++)
        argv[n++] = (char *)head[i];
    for (int i = 0; tail && tail[i] && n < MEMLLM_ARGV_MAX - 1; i++)
        argv[n++] = (char *)tail[i];
    argv[n] = NULL;
}

/* dir/name in one of 8 rotating buffers: a test's scratch files, several
 * of them alive in one call. */
static inline char *path_under(const char *dir, const char *name)
{
    static char buf[8][2048];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 2048, "%s/%s", dir, name);
    return p;
}

/* The value of a "name: value" line of a command's output (the form every
 * figure-printing memllm command uses), -1 when no line names it. */
static inline double out_figure(const char *out, const char *name)
{
    size_t len = strlen(name);
    for (const char *line = out; line && *line;
         line = strchr(line, '\n'), line = line ? line + 1 : NULL)
        if (!strncmp(line, name, len) && line[len] == ':' && line[len + 1] == ' ')
            return atof(line + len + 2);
    return -1;
}

/* run_cmd of memllm_argv. */
static inline struct cmd_result run_memllm(const char *mpirun, const char *bin, int ranks,
                                           const char *const *head, const char *const *tail)
{
    char *argv[MEMLLM_ARGV_MAX], np[16];
    memllm_argv(argv, mpirun, bin, ranks, head, tail, np);
    return run_cmd(argv, NULL);
}

#endif
