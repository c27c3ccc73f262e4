/* memllm serve: the OpenAI-compatible HTTP service (coordinator/serve/).
 * Parses the command line and the API keys file, then runs the service
 * where the model runs (cli_run_with_engine). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "serve.h"

#define MAX_KEYS 1024

struct serve_cli {
    struct cli_model_opts model;
    struct cli_memory_opts mem;
    struct serve_options s;
    const char *keys_file;
    int port_given;
    char name[256];
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: memllm serve --model PATH --port N [options]\n\n"
            "Serves the model over HTTP with OpenAI's API: POST /v1/completions and\n"
            "/v1/chat/completions (\"stream\": true for server-sent events), GET /v1/models\n"
            "(the base model and each --adapter by name; a request's \"model\" picks one)\n"
            "GET /health and GET /metrics (Prometheus). Requests from every client join\n"
            "one continuous batch. With --memory, /v1/memory/ queries, writes and edits\n"
            "the memory (README's Service section lists the routes).\n"
            "With --memory, a request with \"memory\": true runs the MemLLM read loop and\n"
            "its answer carries \"memllm\": the text with and without the API spans and\n"
            "the read trace. Without --api-keys it listens on loopback only. SIGTERM\n"
            "drains: no new connections, the requests taken finish, then exit 0.\n\n" CLI_MODEL_HELP
                CLI_MEMORY_OPTIONAL_HELP CLI_MEMORY_HELP CLI_QUERY_HELP
            "  --host ADDR          IPv4 address to listen on (default 127.0.0.1; another\n"
            "                       needs --api-keys)\n"
            "  --port N             TCP port (required; 0: a free one, printed as\n"
            "                       \"memllm serve: listening on http://HOST:PORT\")\n"
            "  --api-keys FILE      bearer tokens, one a line ('#' comments): \"KEY\" or\n"
            "                       \"KEY read-only|read-write\" (alone: read-write); every\n"
            "                       /v1/ request and /metrics must carry one (401\n"
            "                       otherwise), memory writes a read-write one (403)\n"
            "  --tls-cert FILE, --tls-key FILE\n"
            "                       serve HTTPS with this PEM certificate (chain) and its\n"
            "                       private key (default: plain HTTP)\n"
            "  --batch N            sequences decoded together (default 8)\n"
            "  --max-queue N        requests waiting for a sequence slot; beyond, 429\n"
            "                       (default 64)\n"
            "  --max-body BYTES     largest request body (default 1048576; beyond, 413)\n"
            "  --max-tokens N       largest max_tokens a request may ask (default 4096)\n"
            "  --default-max-tokens N  when a request gives none (default 256)\n"
            "  --drain-seconds N    how long SIGTERM waits for the last answers to be sent\n"
            "                       (default 60)\n"
            "  --health-timeout N   seconds GET /health waits for every stage and shard to\n"
            "                       answer its probe before it answers 503 (default 10)\n");
}

/* One line of the keys file: "KEY" or "KEY ROLE", ROLE read-only or
 * read-write. A key alone is read-write: the keys files of memllm serve
 * before roles gave every key everything, and still do. */
static int parse_key(char *line, const char *path, int line_no, struct serve_key *k)
{
    char *key = line + strspn(line, " \t");
    size_t len = strcspn(key, " \t\r\n");
    char *role = key + len + strspn(key + len, " \t");
    size_t role_len = strcspn(role, " \t\r\n");
    char *rest = role + role_len + strspn(role + role_len, " \t\r\n");
    for (size_t i = 0; i < len; i++)
        if (!isgraph((unsigned char)key[i])) {
            fprintf(stderr, "memllm serve: %s:%d: a key is printable ASCII without spaces\n", path,
                    line_no);
            return -1;
        }
    if (*rest || (role_len && !(role_len == 9 && !strncmp(role, "read-only", 9)) &&
                  !(role_len == 10 && !strncmp(role, "read-write", 10)))) {
        fprintf(stderr, "memllm serve: %s:%d: expected \"KEY\" or \"KEY read-only|read-write\"\n",
                path, line_no);
        return -1;
    }
    k->writes = role_len != 9;
    key[len] = 0;
    return (k->key = strdup(key)) ? 0 : -1;
}

static int read_keys(const char *path, struct serve_options *s)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "memllm serve: --api-keys %s: cannot open\n", path);
        return -1;
    }
    s->keys = calloc(MAX_KEYS, sizeof(*s->keys));
    char line[1024];
    int line_no = 0, rc = s->keys ? 0 : -1;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        line_no++;
        const char *k = line + strspn(line, " \t\r\n");
        if (!*k || *k == '#') continue;
        if (s->n_keys == MAX_KEYS) {
            fprintf(stderr, "memllm serve: %s: more than %d keys\n", path, MAX_KEYS);
            rc = -1;
        } else if (parse_key(line, path, line_no, &s->keys[s->n_keys]) == 0) {
            s->n_keys++;
        } else {
            rc = -1;
        }
    }
    fclose(f);
    if (rc == 0 && s->n_keys == 0) {
        fprintf(stderr, "memllm serve: --api-keys %s: no key in the file\n", path);
        rc = -1;
    }
    return rc;
}

static void free_keys(struct serve_options *s)
{
    for (int i = 0; i < s->n_keys; i++)
        free(s->keys[i].key);
    free(s->keys);
}

/* The base model's name in the API: the file or directory name, without
 * ".gguf". */
static void model_name(const char *path, char *name, size_t cap)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t start = n;
    while (start > 0 && path[start - 1] != '/')
        start--;
    size_t len = n - start;
    if (len > 5 && !strncmp(path + n - 5, ".gguf", 5)) len -= 5;
    if (len >= cap) len = cap - 1;
    memcpy(name, path + start, len);
    name[len] = 0;
}

static int parse_args(int argc, char **argv, struct serve_cli *o)
{
    memset(o, 0, sizeof(*o));
    cli_memory_opts_default(&o->mem);
    o->model.engine.n_slots = 8;
    o->s.host = "127.0.0.1";
    o->s.max_queue = 64;
    o->s.max_body = 1 << 20;
    o->s.max_tokens = 4096;
    o->s.default_max_tokens = 256;
    o->s.drain_seconds = 60;
    o->s.health_timeout = 10;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r, body;
        if ((r = cli_model_opt(argc, argv, &i, &o->model)) ||
            (r = cli_memory_opt(argc, argv, &i, &o->mem)) ||
            (r = cli_query_opt(argc, argv, &i, &o->mem.q))) {
            if (r < 0) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--host", &v))) {
            if (r < 0) return -1;
            o->s.host = v;
        } else if ((r = cli_opt(argc, argv, &i, "--port", &v))) {
            if (r < 0 || cli_int("--port", v, 0, 65535, &o->s.port)) return -1;
            o->port_given = 1;
        } else if ((r = cli_opt(argc, argv, &i, "--api-keys", &v))) {
            if (r < 0) return -1;
            o->keys_file = v;
        } else if ((r = cli_opt(argc, argv, &i, "--tls-cert", &v))) {
            if (r < 0) return -1;
            o->s.tls_cert = v;
        } else if ((r = cli_opt(argc, argv, &i, "--tls-key", &v))) {
            if (r < 0) return -1;
            o->s.tls_key = v;
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r < 0 || cli_int("--batch", v, 1, 4096, &o->model.engine.n_slots)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--max-queue", &v))) {
            if (r < 0 || cli_int("--max-queue", v, 1, 1 << 20, &o->s.max_queue)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--max-body", &v))) {
            if (r < 0 || cli_int("--max-body", v, 1024, 1 << 30, &body)) return -1;
            o->s.max_body = (size_t)body;
        } else if ((r = cli_opt(argc, argv, &i, "--max-tokens", &v))) {
            if (r < 0 || cli_int("--max-tokens", v, 1, 1 << 24, &o->s.max_tokens)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--default-max-tokens", &v))) {
            if (r < 0 || cli_int("--default-max-tokens", v, 1, 1 << 24, &o->s.default_max_tokens))
                return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--drain-seconds", &v))) {
            if (r < 0 || cli_int("--drain-seconds", v, 0, 86400, &o->s.drain_seconds)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--health-timeout", &v))) {
            if (r < 0 || cli_int("--health-timeout", v, 1, 3600, &o->s.health_timeout)) return -1;
        } else {
            fprintf(stderr, "memllm serve: unknown option '%s' (see --help)\n", argv[i]);
            return -1;
        }
    }
    if (cli_model_ready("serve", &o->model) || cli_memory_ready("serve", &o->mem, 0)) return -1;
    if (!o->port_given) {
        fprintf(stderr, "memllm serve: --port N is required (0: a free port)\n");
        return -1;
    }
    /* Without keys anyone who reaches the port could use the model and the
     * memory: only this machine may. */
    if (!o->keys_file && strncmp(o->s.host, "127.", 4)) {
        fprintf(stderr,
                "memllm serve: --host %s: without --api-keys memllm serve listens on loopback "
                "only (127.0.0.1)\n",
                o->s.host);
        return -1;
    }
    if (!o->s.tls_cert != !o->s.tls_key) {
        fprintf(stderr, "memllm serve: HTTPS needs both --tls-cert FILE and --tls-key FILE\n");
        return -1;
    }
    if (o->s.default_max_tokens > o->s.max_tokens) o->s.default_max_tokens = o->s.max_tokens;
    if (o->keys_file && read_keys(o->keys_file, &o->s)) return -1;
    o->s.model_path = o->model.engine.model_path;
    model_name(o->s.model_path, o->name, sizeof(o->name));
    o->s.model_name = o->name;
    o->s.q = o->mem.q;
    o->s.memory_dir = o->mem.dir;
    return 0;
}

static int serve_job(struct engine *e, struct mm_memory *m, const struct cluster *c, void *arg,
                     struct mm_err *err)
{
    (void)c;
    const struct serve_cli *o = arg;
    return serve_run(e, m, &o->s, err);
}

int cli_serve(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    struct serve_cli o;
    if (parse_args(argc, argv, &o)) {
        free_keys(&o.s);
        return 2;
    }
    int rc = cli_run_with_engine("serve", &o.model, o.mem.dir ? &o.mem : NULL, serve_job, &o);
    free_keys(&o.s);
    return rc;
}
