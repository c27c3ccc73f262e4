/* Durability: a child process writes facts one by one to a 2-shard memory
 * and reports each acknowledged write on a pipe; it is killed with SIGKILL
 * mid-stream. Reopened on the same directory, the memory has every
 * acknowledged fact, both copies; at most the one write in flight is
 * half-done, and verify --repair completes it. */
#include "memory/memory_test_util.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#define TARGET_ACKS 300

static void child(const char *dir, int fd)
{
    struct mm_err err;
    struct mm_embedder *e = mm_fallback_embedder_new(&err);
    struct mm_memory *m = e ? mm_memory_open_local(dir, 2, e, 0, &err) : NULL;
    if (!m) {
        fprintf(stderr, "child: %s\n", err.msg);
        _exit(1);
    }
    for (int i = 0;; i++) {
        char s[64], o[64];
        crash_fact_texts("Crash", i, s, o, sizeof(s));
        struct mm_fact f = {s, "crash relation", o, {"crash test", i, 0}};
        if (mm_memory_write(m, &f, 1, NULL, 0, NULL, &err) != 0) {
            fprintf(stderr, "child: %s\n", err.msg);
            _exit(1);
        }
        if (write(fd, &i, sizeof(i)) != (ssize_t)sizeof(i)) _exit(1);
    }
}

int main(void)
{
    char *dir = test_tmpdir("crash");
    int fds[2];
    REQUIRE(pipe(fds) == 0, "pipe");
    pid_t pid = fork();
    REQUIRE(pid >= 0, "fork");
    if (pid == 0) {
        close(fds[0]);
        child(dir, fds[1]);
    }
    close(fds[1]);
    int last = -1, i;
    while (last + 1 < TARGET_ACKS && read(fds[0], &i, sizeof(i)) == (ssize_t)sizeof(i))
        last = i;
    REQUIRE(last + 1 == TARGET_ACKS, "child stopped after %d acknowledged writes", last + 1);
    kill(pid, SIGKILL);
    int status;
    waitpid(pid, &status, 0);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    /* Acknowledgements already in the pipe count too. */
    while (read(fds[0], &i, sizeof(i)) == (ssize_t)sizeof(i))
        last = i;
    close(fds[0]);

    struct mm_err err;
    struct mm_embedder *e = mm_fallback_embedder_new(&err);
    REQUIRE(e, "%s", err.msg);
    struct mm_memory *m = mm_memory_open_local(dir, 2, e, 0, &err);
    REQUIRE(m, "reopening after the kill: %s", err.msg);
    expect_acknowledged_kept(m, "Crash", "crash relation", last);
    printf("acknowledged %d writes before SIGKILL; all present\n", last + 1);
    REQUIRE(mm_memory_close(m, &err) == 0, "%s", err.msg);
    mm_embedder_free(e);
    test_rmtree(dir);
    free(dir);
    return check_report("test_memory_crash");
}
