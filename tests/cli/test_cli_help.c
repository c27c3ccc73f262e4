/* The promises of the memllm command line, through the real binary:
 *
 * - every command and subcommand answers --help (and -h, and `memllm help
 *   ...`) with exit 0, its usage on stdout naming it and nothing on stderr,
 *   even next to a bad option. The commands come from `memllm --help` and
 *   the subcommands from each command's own "commands:" list, so a new
 *   one is covered without touching this test;
 * - every option a usage text names is one the command takes, and an
 *   unknown option fails non-zero naming it;
 * - --memshards 0 means no memory: generate prints the same text as
 *   without it (in one process and under mpirun with 1+P ranks), it
 *   contradicts --memory, and the commands that need a memory (annotate,
 *   edit, memory ...) refuse it saying why.
 *
 *   test_cli_help MPIRUN
 *
 * A usage text's option is tried once per command, however often the text
 * names it. In the sanitizer build (SANITIZED, where each start of memllm
 * costs half a second), only on the first command whose usage names it
 * (84 starts instead of 246), so that each option's parsing still runs
 * under the sanitizers. */
#include <ctype.h>
#include <string.h>

#include "check.h"
#include "run_cmd.h"

#define MAX_NAMES 64
#define MAX_ARGS 64

static char bin[1024], mpirun[1024], model[1200];

/* The documented options already given to this command (a usage text
 * may name one several times), or in the sanitizer build to any command. */
static char seen_options[256][64];
static int n_seen_options;

static int seen_before(const char *opt)
{
    for (int i = 0; i < n_seen_options; i++)
        if (!strcmp(seen_options[i], opt)) return 1;
    if (n_seen_options < (int)(sizeof(seen_options) / sizeof(seen_options[0])))
        snprintf(seen_options[n_seen_options++], sizeof(seen_options[0]), "%s", opt);
    return 0;
}

/* argv = [env ASAN_OPTIONS=detect_leaks=0 mpirun ... -np N] memllm <args...>,
 * args ending with NULL. */
static struct cmd_result memllm(int ranks, const char *const *args)
{
    return run_memllm(mpirun, bin, ranks, args, NULL);
}

/* The names listed after "commands:" in a usage text, one per line as
 * "  NAME  summary", up to the first line that is not so indented. */
static int listed_commands(const char *usage, char names[][32])
{
    const char *p = strstr(usage, "\ncommands:\n");
    if (!p) return 0;
    p += strlen("\ncommands:\n");
    int n = 0;
    while (p[0] == ' ' && p[1] == ' ' && p[2] != ' ' && n < MAX_NAMES) {
        p += 2;
        size_t len = strcspn(p, " \n");
        REQUIRE(len > 0 && len < 32, "command name in '%.40s'", p);
        memcpy(names[n], p, len);
        names[n++][len] = 0;
        p = strchr(p, '\n');
        if (!p) break;
        p++;
    }
    return n;
}

/* `words` (e.g. {"memory", "query"}) with `extra` arguments after them. */
static struct cmd_result run_words(const char *const *words, int nwords, const char *const *extra)
{
    const char *args[MAX_ARGS];
    int n = 0;
    for (int i = 0; i < nwords; i++)
        args[n++] = words[i];
    for (int i = 0; extra[i]; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return memllm(0, args);
}

/* The usage of `words`: exit 0, on stdout, naming the command, nothing on
 * stderr; the same whatever else the command line holds. Returns stdout. */
static char *check_help(const char *const *words, int nwords)
{
    char name[128] = "memllm";
    for (int i = 0; i < nwords; i++) {
        strcat(name, " ");
        strcat(name, words[i]);
    }
    const char *help[] = {"--help", NULL};
    struct cmd_result r = run_words(words, nwords, help);
    CHECKF(r.status == 0, "%s --help: exit %d, stderr '%s'", name, r.status, r.err);
    CHECKF(r.err[0] == 0, "%s --help: stderr '%s'", name, r.err);
    CHECKF(strlen(r.out) > 40, "%s --help: stdout '%s'", name, r.out);
    CHECKF(strstr(r.out, name) != NULL, "%s --help: usage does not name it:\n%s", name, r.out);
    CHECKF(!strncmp(r.out, "usage: ", 7), "%s --help: '%.60s'", name, r.out);

    /* --help wins over a bad option, wherever it stands; -h is the same.
     * (Each run costs the binary's start-up: subcommands get one variant.) */
    const char *variants[][4] = {
        {"--no-such-option", "--help", NULL},
        {"--help", "--no-such-option", NULL},
        {"-h", NULL},
    };
    size_t n_variants = nwords == 1 ? sizeof(variants) / sizeof(variants[0]) : 1;
    for (size_t v = 0; v < n_variants; v++) {
        struct cmd_result o = run_words(words, nwords, variants[v]);
        CHECKF(o.status == 0 && o.err[0] == 0 && !strcmp(o.out, r.out),
               "%s %s %s: exit %d, stderr '%s', stdout %s the --help one", name, variants[v][0],
               variants[v][1] ? variants[v][1] : "", o.status, o.err,
               strcmp(o.out, r.out) ? "differs from" : "equals");
        cmd_result_free(&o);
    }
    /* memllm help WORDS... */
    const char *with_help[MAX_ARGS] = {"help"};
    for (int i = 0; i < nwords; i++)
        with_help[1 + i] = words[i];
    with_help[1 + nwords] = NULL;
    struct cmd_result h = memllm(0, with_help);
    CHECKF(h.status == 0 && !strcmp(h.out, r.out), "memllm help %s: exit %d, '%s'",
           name + strlen("memllm "), h.status, h.err);
    cmd_result_free(&h);
    free(r.err);
    return r.out;
}

/* An option the command does not take fails naming it, printing nothing. */
static void check_unknown_option(const char *const *words, int nwords)
{
    const char *bad[] = {"--frobnicate", NULL};
    struct cmd_result r = run_words(words, nwords, bad);
    CHECKF(r.status != 0 && r.status < 128, "%s ... --frobnicate: exit %d", words[nwords - 1],
           r.status);
    CHECKF(strstr(r.err, "'--frobnicate'") != NULL, "%s ... --frobnicate: stderr '%s'",
           words[nwords - 1], r.err);
    CHECKF(r.out[0] == 0, "%s ... --frobnicate: stdout '%s'", words[nwords - 1], r.out);
    cmd_result_free(&r);
}

/* Every "--option" a usage text names is taken by the command: given alone
 * it may miss its value or other required options, but it is not unknown. */
static void check_documented_options(const char *const *words, int nwords, const char *usage)
{
    if (!SANITIZED) n_seen_options = 0;
    for (const char *p = strstr(usage, "--"); p; p = strstr(p + 2, "--")) {
        if (p > usage && (isalnum((unsigned char)p[-1]) || p[-1] == '-')) continue;
        char opt[64] = "--";
        size_t len = 0;
        while (len < sizeof(opt) - 3 && (islower((unsigned char)p[2 + len]) || p[2 + len] == '-'))
            len++;
        while (len > 0 && p[2 + len - 1] == '-')
            len--;
        if (len == 0) continue;
        memcpy(opt + 2, p + 2, len);
        opt[2 + len] = 0;
        if (!strcmp(opt, "--help")) continue;
        if (seen_before(opt)) continue;
        const char *args[] = {opt, NULL};
        struct cmd_result r = run_words(words, nwords, args);
        char quoted[80];
        snprintf(quoted, sizeof(quoted), "'%s'", opt);
        CHECKF(!strstr(r.err, quoted), "%s: its usage names %s, which it refuses: %s",
               words[nwords - 1], opt, r.err);
        cmd_result_free(&r);
    }
}

static void check_every_help(void)
{
    const char *none[] = {NULL};
    const char *top_help[] = {"--help", NULL};
    struct cmd_result top = memllm(0, top_help);
    CHECKF(top.status == 0 && top.err[0] == 0, "memllm --help: exit %d, '%s'", top.status, top.err);
    const char *help_word[] = {"help", NULL};
    struct cmd_result hw = memllm(0, help_word);
    CHECKF(hw.status == 0 && !strcmp(hw.out, top.out), "memllm help: exit %d", hw.status);
    cmd_result_free(&hw);
    /* Without a command: the usage, on stderr, and a failure. */
    struct cmd_result bare = memllm(0, none);
    CHECKF(bare.status == 2 && bare.out[0] == 0 && strstr(bare.err, "commands:"),
           "memllm alone: exit %d", bare.status);
    cmd_result_free(&bare);
    /* An unknown command stays an error, --help or not. */
    const char *bogus[] = {"bogus", "--help", NULL};
    struct cmd_result b = memllm(0, bogus);
    CHECKF(b.status == 2 && strstr(b.err, "'bogus'") && b.out[0] == 0,
           "memllm bogus --help: exit %d, '%s'", b.status, b.err);
    cmd_result_free(&b);

    char commands[MAX_NAMES][32];
    int n = listed_commands(top.out, commands);
    const char *expected[] = {"generate", "tokenize", "ppl", "memory", "annotate", "edit"};
    for (size_t e = 0; e < sizeof(expected) / sizeof(expected[0]); e++) {
        int found = 0;
        for (int i = 0; i < n; i++)
            found |= !strcmp(commands[i], expected[e]);
        CHECKF(found, "memllm --help does not list %s:\n%s", expected[e], top.out);
    }
    int n_subs_total = 0;
    for (int i = 0; i < n; i++) {
        const char *words[2] = {commands[i], NULL};
        char *usage = check_help(words, 1);
        check_unknown_option(words, 1);
        char subs[MAX_NAMES][32];
        int ns = listed_commands(usage, subs);
        if (ns == 0) check_documented_options(words, 1, usage);
        for (int s = 0; s < ns; s++) {
            words[1] = subs[s];
            char *sub_usage = check_help(words, 2);
            check_unknown_option(words, 2);
            check_documented_options(words, 2, sub_usage);
            free(sub_usage);
            n_subs_total++;
        }
        /* An unknown subcommand stays an error. */
        if (ns > 0) {
            const char *bad[] = {commands[i], "bogus", "--help", NULL};
            struct cmd_result r = memllm(0, bad);
            CHECKF(r.status != 0 && strstr(r.err, "'bogus'"), "%s bogus --help: exit %d, '%s'",
                   commands[i], r.status, r.err);
            cmd_result_free(&r);
        }
        free(usage);
    }
    CHECKF(n_subs_total >= 11, "memllm memory lists %d subcommands", n_subs_total);
    printf("--help: %d commands, %d subcommands\n", n, n_subs_total);
    cmd_result_free(&top);

    /* A memory subcommand refuses the options of another one. */
    const char *dump_source[] = {"memory",   "dump", "--memory", "/nonexistent",
                                 "--source", "x",    NULL};
    struct cmd_result r = memllm(0, dump_source);
    CHECKF(r.status == 2 && strstr(r.err, "'--source'"), "memory dump --source: exit %d, '%s'",
           r.status, r.err);
    cmd_result_free(&r);
}

/* --memshards 0: no memory. */
static void check_no_memory(void)
{
    const char *prompt = "Wilfried \" Willi \" Schneider ( born";
    const char *plain[] = {"generate",     "--model", model,       "--prompt", prompt, "--greedy",
                           "--max-tokens", "16",      "--threads", "1",        NULL};
    struct cmd_result want = memllm(0, plain);
    REQUIRE(want.status == 0 && strlen(want.out) > 4, "generate: exit %d, '%s'", want.status,
            want.err);
    const char *zero[] = {
        "generate", "--model",   model, "--prompt",    prompt, "--greedy", "--max-tokens",
        "16",       "--threads", "1",   "--memshards", "0",    NULL};
    struct cmd_result r = memllm(0, zero);
    CHECKF(r.status == 0 && !strcmp(r.out, want.out),
           "generate --memshards 0: exit %d, '%s' vs '%s' (%s)", r.status, r.out, want.out, r.err);
    cmd_result_free(&r);
    /* Under mpirun: 1 coordinator + 1 stage + 0 shards. */
    const char *mpi[] = {"generate",     "--model", model,       "--prompt", prompt,     "--greedy",
                         "--max-tokens", "16",      "--threads", "1",        "--stages", "1",
                         "--memshards",  "0",       NULL};
    r = memllm(2, mpi);
    CHECKF(r.status == 0 && !strcmp(r.out, want.out),
           "mpirun -np 2 generate --memshards 0: exit %d, '%s' vs '%s' (%s)", r.status, r.out,
           want.out, r.err);
    cmd_result_free(&r);
    r = memllm(3, mpi);
    CHECKF(r.status != 0 && strstr(r.err, "mpirun -np 2"),
           "mpirun -np 3 generate --stages 1 --memshards 0: exit %d, '%s'", r.status, r.err);
    cmd_result_free(&r);
    cmd_result_free(&want);

    struct {
        const char *args[16];
        const char *says[3];
    } refused[] = {
        {{"generate", "--model", model, "--prompt", "x", "--memshards", "0", "--memory",
          "/nonexistent", NULL},
         {"--memshards 0", "--memory", NULL}},
        {{"generate", "--model", model, "--prompt", "x", "--memshards", "2", NULL},
         {"--memshards 2", "needs --memory", NULL}},
        {{"annotate", "corpus.txt", "--model", model, "--memory", "/nonexistent", "--memshards",
          "0", NULL},
         {"--memshards 0", "annotate needs one", NULL}},
        {{"annotate", "corpus.txt", "--model", model, "--memshards", "0", NULL},
         {"--memshards 0", "annotate needs one", NULL}},
        {{"edit", "edits.jsonl", "--memory", "/nonexistent", "--memshards", "0", NULL},
         {"--memshards 0", "edit needs one", NULL}},
        {{"memory", "query", "a>>b>>", "--memory", "/nonexistent", "--memshards", "0", NULL},
         {"--memshards 0", "memory query needs one", NULL}},
        {{"memory", "write", "a>>b>>c", "--memory", "/nonexistent", "--memshards", "0", NULL},
         {"--memshards 0", "memory write needs one", NULL}},
        {{"generate", "--model", model, "--prompt", "x", "--memshards", "-1", NULL},
         {"--memshards", "[0, 4096]", NULL}},
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        r = memllm(0, refused[i].args);
        CHECKF(r.status == 2 && r.out[0] == 0, "%s case %zu: exit %d", refused[i].args[0], i,
               r.status);
        for (int k = 0; refused[i].says[k]; k++)
            CHECKF(strstr(r.err, refused[i].says[k]) != NULL, "%s case %zu: '%s' lacks '%s'",
                   refused[i].args[0], i, r.err, refused[i].says[k]);
        cmd_result_free(&r);
    }
}

int main(int argc, char **argv)
{
    REQUIRE(argc == 2, "usage: test_cli_help MPIRUN");
    snprintf(mpirun, sizeof(mpirun), "%s", argv[1]);
    snprintf(bin, sizeof(bin), "%s", getenv("MEMLLM_BIN"));
    test_path("MEMLLM_FIXTURES", "models/tiny-mistral", model, sizeof(model));
    check_every_help();
    check_no_memory();
    return check_report("test_cli_help");
}
