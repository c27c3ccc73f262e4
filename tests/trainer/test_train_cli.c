/* memllm train through the binary, on the tiny Mistral fixture (sliding
 * window, GQA, untied head):
 *   - overfitting a handful of examples drives the loss near zero, and the
 *     adapter it writes loads in `memllm generate`;
 *   - a run killed with SIGKILL and resumed writes the same adapter bytes
 *     as an uninterrupted one;
 *   - 2 MPI ranks write the same adapter bytes as 1;
 *   - bad input (a malformed line, an example with no loss tokens, one
 *     longer than --max-tokens, an --init adapter of another model) fails
 *     with a message naming it and writes no adapter.
 *
 *   test_train_cli MEMLLM_BIN FIXTURES_DIR [MPIRUN] */
#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "read_file.h"
#include "run_cmd.h"

static const char *bin, *mpirun;
static char model[1024], tmp[] = "/tmp/memllm_train_XXXXXX";

/* Examples in `memllm data`'s format: a prompt without loss, then the API
 * part with loss (the MW shape). */
static const char *const examples[] = {
    "{\"kind\":\"mw\",\"doc\":0,\"title\":\"a\",\"segments\":[{\"text\":\"Dancing on Coral is a "
    "novel by Glenda Adams.({MEM_WRITE-->\",\"loss\":false},{\"text\":\"Dancing on "
    "Coral>>author>>Glenda Adams})\",\"loss\":true}]}",
    "{\"kind\":\"mw\",\"doc\":1,\"title\":\"b\",\"segments\":[{\"text\":\"Willi Schneider was born "
    "on 13 March 1963 in Germany.({MEM_WRITE-->\",\"loss\":false},{\"text\":\"Willi "
    "Schneider>>date of birth>>13 March 1963;Willi Schneider>>country of "
    "citizenship>>Germany})\",\"loss\":true}]}",
    "{\"kind\":\"mr\",\"doc\":2,\"title\":\"c\",\"segments\":[{\"text\":\"The river flows "
    "through\",\"loss\":false},{\"text\":\"({MEM_READ(The river>>country>>)-->\",\"loss\":true},{"
    "\"text\":\"France\",\"loss\":false},{\"text\":\"})\",\"loss\":false},{\"text\":\" France "
    "and ends in the sea.\",\"loss\":true}]}",
    "{\"kind\":\"mw\",\"doc\":3,\"title\":\"d\",\"segments\":[{\"text\":\"Nothing to see "
    "here.({MEM_WRITE-->\",\"loss\":false},{\"text\":\"})\",\"loss\":true}]}",
};
#define N_EXAMPLES (sizeof(examples) / sizeof(examples[0]))

static void write_text(const char *path, const char *const *lines, size_t n)
{
    FILE *f = fopen(path, "w");
    REQUIRE(f, "cannot write %s", path);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s\n", lines[i]);
    REQUIRE(fclose(f) == 0, "close %s", path);
}

static char *path_in(const char *name)
{
    return path_under(tmp, name);
}

static int same_file(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *x = read_file(a, &na), *y = read_file(b, &nb);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* Whether dirs a and b hold the same bytes in file `name`. */
static int same_in(const char *a, const char *b, const char *name)
{
    char pa[2100], pb[2100];
    snprintf(pa, sizeof(pa), "%s/%s", a, name);
    snprintf(pb, sizeof(pb), "%s/%s", b, name);
    return same_file(pa, pb);
}

static int exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* memllm train with the common options, the data file and out dir, plus
 * extra (NULL-ended). */
static struct cmd_result train(int ranks, const char *data, const char *out,
                               const char *const *extra)
{
    const char *head[] = {"train", "--model", model,  "--data",  data, "--out",
                          out,     "--rank",  "4",    "--alpha", "8",  "--dropout",
                          "0.1",   "--lr",    "1e-2", "--batch", "4",  "--threads",
                          "1",     "--seed",  "3",    NULL};
    return run_memllm(mpirun, bin, ranks, head, extra);
}

/* Last train loss and the first of loss.csv. */
static void read_losses(const char *dir, double *first, double *last, int *steps)
{
    char path[2100];
    snprintf(path, sizeof(path), "%s/loss.csv", dir);
    FILE *f = fopen(path, "r");
    REQUIRE(f, "no %s", path);
    char line[512];
    *steps = 0;
    REQUIRE(fgets(line, sizeof(line), f), "empty %s", path);
    while (fgets(line, sizeof(line), f)) {
        double loss;
        int step;
        if (sscanf(line, "%d,%lf", &step, &loss) != 2) continue;
        if (*steps == 0) *first = loss;
        *last = loss;
        *steps = step;
    }
    fclose(f);
}

static void overfit(void)
{
    const char *out = path_in("overfit");
    const char *extra[] = {"--epochs",    "80", "--dropout", "0", "--val", path_in("train.jsonl"),
                           "--val-every", "20", NULL};
    struct cmd_result r = train(0, path_in("train.jsonl"), out, extra);
    CHECKF(r.status == 0, "train exited %d: %s", r.status, r.err);
    /* progress on stderr: step, loss, tokens/s, ETA and the validation loss */
    CHECKF(strstr(r.err, "step 80/80") && strstr(r.err, "tok/s") && strstr(r.err, "ETA") &&
               strstr(r.err, "val-loss"),
           "progress lines missing: %s", r.err);
    cmd_result_free(&r);
    double first = 0, last = 0;
    int steps = 0;
    read_losses(out, &first, &last, &steps);
    CHECKF(steps == 80, "%d steps (80 epochs of one batch)", steps);
    CHECKF(last < 0.05 && last < first / 20, "loss %g -> %g: not overfitted", first, last);
    char png[2100];
    snprintf(png, sizeof(png), "%s/loss.png", out);
    CHECKF(exists(png), "no %s", png);

    /* the adapter loads for generation */
    char adapter[2100];
    snprintf(adapter, sizeof(adapter), "mw=%s", out);
    const char *gen[] = {"generate", "--model", model,          "--adapter", adapter,
                         "--prompt", "Dancing", "--max-tokens", "4",         NULL};
    r = run_memllm(mpirun, bin, 0, gen, NULL);
    CHECKF(r.status == 0, "generate with the trained adapter exited %d: %s", r.status, r.err);
    cmd_result_free(&r);
}

/* Starts a run, SIGKILLs it once its checkpoint holds step >= 2, resumes. */
static void resume_after_kill(void)
{
    const char *whole = path_in("whole"), *cut = path_in("cut");
    /* 60 steps, a checkpoint after each: the kill lands mid-run, maybe
     * mid-checkpoint */
    const char *extra[] = {"--epochs", "30", "--batch", "2", "--save-every", "1", "--quiet", NULL};
    struct cmd_result r = train(0, path_in("train.jsonl"), whole, extra);
    CHECKF(r.status == 0, "uninterrupted run exited %d: %s", r.status, r.err);
    cmd_result_free(&r);

    char *argv[MEMLLM_ARGV_MAX], np[16];
    const char *head[] = {"train",   "--model",   model,       "--data", path_in("train.jsonl"),
                          "--out",   cut,         "--rank",    "4",      "--alpha",
                          "8",       "--dropout", "0.1",       "--lr",   "1e-2",
                          "--batch", "4",         "--threads", "1",      "--seed",
                          "3",       NULL};
    memllm_argv(argv, mpirun, bin, 0, head, extra, np);
    pid_t pid;
    REQUIRE(posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) == 0, "spawn");
    char state[2100];
    snprintf(state, sizeof(state), "%s/checkpoint/state.json", cut);
    int killed = 0;
    for (int i = 0; i < 6000 && !killed; i++) {
        size_t n = 0;
        char *s = read_file(state, &n);
        if (s && (strstr(s, "\"step\": 2") || strstr(s, "\"step\": 3"))) {
            kill(pid, SIGKILL);
            killed = 1;
        }
        free(s);
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
    int ws;
    waitpid(pid, &ws, 0);
    CHECKF(killed && WIFSIGNALED(ws), "the run was not killed mid-way (it ended first?)");
    /* What a kill inside a save's st_write leaves, whether or not this kill
     * landed there: the scratch directory with a half-written file */
    char scratch[2100], half[2200];
    snprintf(scratch, sizeof(scratch), "%s/checkpoint.tmp", cut);
    snprintf(half, sizeof(half), "%s/state.safetensors.tmp", scratch);
    REQUIRE(mkdir(scratch, 0755) == 0 || errno == EEXIST, "mkdir %s", scratch);
    FILE *f = fopen(half, "wb");
    REQUIRE(f && fputs("half", f) >= 0 && fclose(f) == 0, "write %s", half);
    const char *resume[] = {"--epochs", "30",      "--batch",  "2", "--save-every",
                            "1",        "--quiet", "--resume", NULL};
    r = train(0, path_in("train.jsonl"), cut, resume);
    CHECKF(r.status == 0, "resumed run exited %d: %s", r.status, r.err);
    cmd_result_free(&r);
    CHECKF(same_in(whole, cut, "adapter_model.safetensors"),
           "the resumed adapter differs from the uninterrupted one");
    CHECKF(same_in(whole, cut, "loss.csv"),
           "the resumed loss curve differs from the uninterrupted one");
}

static void ranks_agree(void)
{
    if (!mpirun) {
        printf("test_train_cli: no mpirun given: the 2-rank run is left out\n");
        return;
    }
    const char *one = path_in("r1"), *two = path_in("r2");
    const char *extra[] = {"--epochs", "3", "--quiet", NULL};
    struct cmd_result r = train(0, path_in("train.jsonl"), one, extra);
    CHECKF(r.status == 0, "1 rank exited %d: %s", r.status, r.err);
    cmd_result_free(&r);
    r = train(2, path_in("train.jsonl"), two, extra);
    CHECKF(r.status == 0, "2 ranks exited %d: %s", r.status, r.err);
    cmd_result_free(&r);
    CHECKF(same_in(one, two, "adapter_model.safetensors"),
           "2 ranks wrote another adapter than 1 rank");
}

/* With 3 threads, examples run 3 at a time (one per thread, each on its own
 * copy of the activations): the same adapter and loss curve, validation
 * included, as one thread running them one after the other. */
static void threads_agree(void)
{
    const char *one = path_in("t1"), *three = path_in("t3");
    const char *extra1[] = {"--epochs", "3", "--quiet", "--val", path_in("train.jsonl"), NULL};
    const char *extra3[] = {"--epochs",  "3", "--quiet", "--val", path_in("train.jsonl"),
                            "--threads", "3", NULL};
    struct cmd_result r = train(0, path_in("train.jsonl"), one, extra1);
    CHECKF(r.status == 0, "1 thread exited %d: %s", r.status, r.err);
    cmd_result_free(&r);
    r = train(0, path_in("train.jsonl"), three, extra3);
    CHECKF(r.status == 0, "3 threads exited %d: %s", r.status, r.err);
    cmd_result_free(&r);
    CHECKF(same_in(one, three, "adapter_model.safetensors"),
           "3 threads wrote another adapter than 1 thread");
    CHECKF(same_in(one, three, "loss.csv"), "3 threads logged other losses than 1 thread");
}

/* A bad input: exit non-zero, the message names `want`, no adapter. */
static void expect_error(const char *data, const char *out, const char *const *extra,
                         const char *want)
{
    struct cmd_result r = train(0, data, out, extra);
    char adapter[2100];
    snprintf(adapter, sizeof(adapter), "%s/adapter_model.safetensors", out);
    CHECKF(r.status != 0 && strstr(r.err, want) && !exists(adapter),
           "expected a failure naming '%s', got exit %d: %s", want, r.status, r.err);
    cmd_result_free(&r);
}

static void bad_input(void)
{
    const char *malformed[] = {examples[0], "{\"segments\": [ {\"text\": 3}"};
    write_text(path_in("malformed.jsonl"), malformed, 2);
    expect_error(path_in("malformed.jsonl"), path_in("bad1"), NULL, "line 2");

    const char *no_loss[] = {
        "{\"kind\":\"mw\",\"segments\":[{\"text\":\"no target here\",\"loss\":false}]}"};
    write_text(path_in("noloss.jsonl"), no_loss, 1);
    expect_error(path_in("noloss.jsonl"), path_in("bad2"), NULL, "no token carries loss");

    const char *long_ex[] = {"--max-tokens", "8", NULL};
    expect_error(path_in("train.jsonl"), path_in("bad3"), long_ex, "--max-tokens");

    char other[2100];
    snprintf(other, sizeof(other), "%s/../tiny-llama/adapter", model);
    const char *init[] = {"--init", other, NULL};
    expect_error(path_in("train.jsonl"), path_in("bad4"), init, "adapter");

    const char *bogus_device[] = {"--device", "tpu", NULL};
    expect_error(path_in("train.jsonl"), path_in("bad5"), bogus_device, "'tpu' is not cpu or cuda");
    /* --device cuda: trains where a GPU is, else says why not and writes nothing */
    const char *cuda[] = {"--device", "cuda", "--max-steps", "1", NULL};
    struct cmd_result r = train(0, path_in("train.jsonl"), path_in("cuda"), cuda);
    int wrote = exists(path_in("cuda/adapter_model.safetensors"));
    CHECKF(r.status == 0 ? wrote : !wrote && strstr(r.err, "--device cuda"),
           "--device cuda: exit %d, adapter %s: %s", r.status, wrote ? "written" : "absent", r.err);
    cmd_result_free(&r);
}

int main(int argc, char **argv)
{
    REQUIRE(argc >= 3, "usage: test_train_cli MEMLLM_BIN FIXTURES_DIR [MPIRUN]");
    bin = argv[1];
    mpirun = argc > 3 && argv[3][0] ? argv[3] : NULL;
    snprintf(model, sizeof(model), "%s/models/tiny-mistral", argv[2]);
    REQUIRE(mkdtemp(tmp), "mkdtemp");
    write_text(path_in("train.jsonl"), examples, N_EXAMPLES);
    bad_input();
    overfit();
    resume_after_kill();
    ranks_agree();
    threads_agree();
    return check_report("test_train_cli");
}
