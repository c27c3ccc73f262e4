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

extern char **environ;

struct cmd_result {
    int status; /* exit code, or 128 + signal */
    char *out, *err;
};

static inline char *slurp_fd_file(FILE *f)
{
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    char *buf = malloc((size_t)n + 1);
    size_t got = fread(buf, 1, (size_t)n, f);
    buf[got] = 0;
    return buf;
}

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
    r.out = slurp_fd_file(out);
    r.err = slurp_fd_file(err);
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

#endif
