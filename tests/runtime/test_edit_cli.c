/* memllm edit end to end (fallback embedder, no model): a batch of adds,
 * a replace and deletes gives the memory the hand-worked facts and
 * provenance; --undo restores exactly the dump from before the batch,
 * provenance order and times included; an undone batch cannot be undone twice; bad
 * lines fail naming FILE:LINE and change nothing; the same under mpirun
 * with two shard ranks. */
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "check.h"
#include "run_cmd.h"

static char bin[1024], mpirun[1024], work[] = "/tmp/memllm-edit-XXXXXX";

/* argv = [env ASAN_OPTIONS=detect_leaks=0 mpirun ... -np N] memllm <args...> */
static struct cmd_result memllm(int ranks, const char *const *args)
{
    return run_memllm(mpirun, bin, ranks, args, NULL);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    REQUIRE(f && fputs(text, f) >= 0 && fclose(f) == 0, "cannot write %s", path);
}

/* `memllm memory dump` (all copies), which must succeed. */
static char *dump_with(const char *dir, int times)
{
    const char *args[] = {"memory", "dump", "--copies", "--memory", dir, times ? "--times" : NULL,
                          NULL};
    struct cmd_result r = memllm(0, args);
    REQUIRE(r.status == 0, "dump: %s", r.err);
    free(r.err);
    return r.out;
}

static char *dump(const char *dir)
{
    return dump_with(dir, 0);
}

/* The dump with each provenance record's time: what an undo restores. */
static char *dump_times(const char *dir)
{
    return dump_with(dir, 1);
}

static void must(int ranks, const char *what, const char *const *args, char **out)
{
    struct cmd_result r = memllm(ranks, args);
    REQUIRE(r.status == 0, "%s: exit %d: %s", what, r.status, r.err);
    if (out)
        *out = r.out;
    else
        free(r.out);
    free(r.err);
}

/* A memory whose facts carry provenance written at different times, in an
 * order that is not the sources' alphabetical order. */
static void make_memory(const char *dir)
{
    char first[1200], second[1200];
    snprintf(first, sizeof(first), "%s/first.jsonl", work);
    snprintf(second, sizeof(second), "%s/second.jsonl", work);
    write_file(first,
               "{\"triple\": \"Willi Schneider>>country of citizenship>>Germany\", \"source\": "
               "\"doc2\", \"sentence\": 3}\n"
               "{\"triple\": \"Paris>>country>>France\", \"source\": \"doc3\", \"sentence\": 0}\n");
    write_file(
        second,
        "{\"triple\": \"Willi Schneider>>country of citizenship>>Germany\", \"source\": "
        "\"doc1\", \"sentence\": 0}\n"
        "{\"triple\": \"Willi Schneider>>date of birth>>13 March 1963\", \"source\": "
        "\"doc1\", \"sentence\": 0}\n"
        "{\"triple\": \"Berlin>>country>>Germany\", \"source\": \"doc1\", \"sentence\": 1}\n");
    const char *a[] = {"memory",      "write", "--file",     first,      "--memory", dir,
                       "--memshards", "2",     "--embedder", "fallback", NULL};
    must(0, "memory write", a, NULL);
    /* A later millisecond for the second file's records. */
    struct timespec pause = {0, 5000000};
    nanosleep(&pause, NULL);
    const char *b[] = {"memory", "write", "--file", second, "--memory", dir, NULL};
    must(0, "memory write", b, NULL);
}

static const char *edits = "{\"op\": \"add\", \"fact\": \"Rome>>country>>Italy\"}\n"
                           "{\"op\": \"add\", \"fact\": \"Berlin>>country>>Germany\"}\n"
                           "{\"op\": \"replace\", \"fact\": \"Willi Schneider>>country of "
                           "citizenship>>Austria\"}\n"
                           "{\"op\": \"delete\", \"fact\": \"Paris>>country>>France\"}\n"
                           "{\"op\": \"delete\", \"fact\": \"Nowhere>>country>>Atlantis\"}\n"
                           "\n"
                           "{\"op\": \"add\", \"fact\": \"Willi Schneider>>date of birth>>13 "
                           "March 1963\"}\n";

static int has_line(const char *text, const char *line)
{
    size_t n = strlen(line);
    for (const char *p = strstr(text, line); p; p = strstr(p + 1, line))
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == 0)) return 1;
    return 0;
}

/* Applies the batch (ranks > 0: under mpirun) and checks the facts it
 * gives; returns the batch id (malloc'd). */
static char *apply(const char *dir, const char *file, int ranks)
{
    const char *args[] = {"edit", file, "--memory", dir, NULL};
    char *out;
    must(ranks, "edit", args, &out);
    const char *p = strstr(out, "batch: ");
    REQUIRE(p, "no batch id in: %s", out);
    char *id = strndup(p + 7, strcspn(p + 7, "\n"));
    CHECKF(has_line(out, "added: 1") && has_line(out, "existing: 2") &&
               has_line(out, "replaced: 1") && has_line(out, "removed: 1") &&
               has_line(out, "deleted: 1") && has_line(out, "not_found: 1"),
           "edit summary:\n%s", out);
    free(out);

    char *d = dump(dir), want[512];
    snprintf(want, sizeof(want), "Rome>>country>>Italy\tedit:%s #1", id);
    CHECKF(has_line(d, want), "missing '%s' in:\n%s", want, d);
    snprintf(want, sizeof(want), "Berlin>>country>>Germany\tdoc1 #1; edit:%s #2", id);
    CHECKF(has_line(d, want), "missing '%s' in:\n%s", want, d);
    snprintf(want, sizeof(want), "Willi Schneider>>country of citizenship>>Austria\tedit:%s #3",
             id);
    CHECKF(has_line(d, want), "missing '%s' in:\n%s", want, d);
    snprintf(want, sizeof(want),
             "Willi Schneider>>date of birth>>13 March 1963\tdoc1 #0; edit:%s #7", id);
    CHECKF(has_line(d, want), "missing '%s' in:\n%s", want, d);
    CHECKF(!strstr(d, ">>Germany\tdoc2") && !strstr(d, "Paris>>"), "removed facts remain:\n%s", d);
    free(d);
    return id;
}

static void undo(const char *dir, const char *id, int ranks, const char *before)
{
    const char *args[] = {"edit", "--undo", id, "--memory", dir, NULL};
    must(ranks, "undo", args, NULL);
    char *after = dump_times(dir);
    CHECKF(!strcmp(after, before), "after undo:\n%s\nbefore the batch:\n%s", after, before);
    free(after);
    const char *verify[] = {"memory", "verify", "--memory", dir, NULL};
    must(0, "verify", verify, NULL);
    struct cmd_result again = memllm(0, args);
    CHECKF(again.status != 0 && strstr(again.err, "undone already"), "second undo: exit %d: %s",
           again.status, again.err);
    cmd_result_free(&again);
}

static void bad_lines(const char *dir)
{
    const char *lines[] = {
        "{\"op\": \"add\", \"fact\": \"a>>b\"}",
        "{\"op\": \"move\", \"fact\": \"a>>b>>c\"}",
        "{\"op\": \"add\"}",
        "not json",
        "{\"op\": \"add\", \"fact\": \"a>>b>>\"}",
    };
    char *before = dump_times(dir), file[1200];
    snprintf(file, sizeof(file), "%s/bad.jsonl", work);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text), "{\"op\": \"add\", \"fact\": \"Good>>fact>>Here\"}\n%s\n",
                 lines[i]);
        write_file(file, text);
        const char *args[] = {"edit", file, "--memory", dir, NULL};
        struct cmd_result r = memllm(0, args);
        char where[1300];
        snprintf(where, sizeof(where), "%s:2", file);
        CHECKF(r.status != 0 && strstr(r.err, where), "bad line %zu: exit %d: %s", i, r.status,
               r.err);
        cmd_result_free(&r);
    }
    char *after = dump_times(dir);
    CHECKF(!strcmp(after, before), "bad batches changed the memory");
    free(after);
    free(before);
}

static int count_records(const char *dir)
{
    char cmd[1300];
    snprintf(cmd, sizeof(cmd), "ls %s/edits/*.json 2>/dev/null | wc -l", dir);
    FILE *p = popen(cmd, "r");
    int n = -1;
    REQUIRE(p && fscanf(p, "%d", &n) == 1, "cannot list %s/edits", dir);
    pclose(p);
    return n;
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 2, "usage: test_edit_cli MPIRUN");
    snprintf(mpirun, sizeof(mpirun), "%s", argv[1]);
    snprintf(bin, sizeof(bin), "%s", getenv("MEMLLM_BIN"));
    REQUIRE(mkdtemp(work), "mkdtemp");
    char dir[1200], file[1200];
    snprintf(dir, sizeof(dir), "%s/memory", work);
    snprintf(file, sizeof(file), "%s/edits.jsonl", work);
    make_memory(dir);
    write_file(file, edits);
    char *before = dump_times(dir);
    const char *germany = strstr(before, "Germany\tdoc2 #3 @");
    REQUIRE(germany && !strncmp(germany + strcspn(germany, ";"), "; doc1 #0 @", 11),
            "provenance not in time order, or without times:\n%s", before);

    /* One process. */
    char *id = apply(dir, file, 0);
    undo(dir, id, 0, before);
    free(id);
    bad_lines(dir);
    CHECKF(count_records(dir) == 1, "%d undo records: a failed batch left one", count_records(dir));

    /* Under mpirun, rank 0 and the two shards on ranks 1 and 2; the undo
     * in one process. */
    id = apply(dir, file, 3);
    undo(dir, id, 0, before);
    free(id);

    free(before);
    char cmd[1100];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", work);
    REQUIRE(system(cmd) == 0, "cleanup");
    return check_report("test_edit_cli");
}
