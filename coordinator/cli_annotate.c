/* memllm annotate CORPUS...: the MemLLM write loop over every sentence of a
 * corpus, into the memory (memllm_write.h).
 *
 * Documents: a plain text file is one document named after the file; a
 * .jsonl file holds one per line, {"id": ..., "text": ...} or DocRED-style
 * {"title": ..., "sents": [[tokens]]}; a .json file is an array of them
 * (the DocRED files themselves).
 *
 * Resuming: a document's id is appended (and fsynced) to DIR/annotate.done
 * only after the memory acknowledged all its facts. A restarted job skips
 * the documents listed there and redoes any other, which is harmless: a
 * fact written again only gains provenance, and provenance is kept once per
 * (source, sentence). */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_args.h"
#include "memllm_write.h"
#include "progress.h"
#include "sentences.h"
#include "text.h"

#define DONE_FILE "annotate.done"

struct annotate_opts {
    struct cli_model_opts model;
    struct cli_memory_opts mem;
    struct mw_options mw;
    const char *use_adapter, *trace;
    int batch, chunk;
    char **corpus;
    int n_corpus;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: memllm annotate CORPUS... --model PATH --memory DIR [options]\n\n"
                 "Runs the MemLLM write model over every sentence of the corpus and stores\n"
                 "the facts it writes, each with its provenance (document id, sentence).\n"
                 "CORPUS: plain text files (one document each, named after the file), .jsonl\n"
                 "files (one document per line: {\"id\", \"text\"} or {\"title\", \"sents\":\n"
                 "[[tokens]]}), or .json arrays of such documents (DocRED files).\n"
                 "A restarted job skips the documents it finished (DIR/" DONE_FILE ").\n\n"
                 "Under mpirun: mpirun -np 1+P+S memllm annotate ... --stages P --memshards "
                 "S\n\n" CLI_MODEL_HELP CLI_MEMORY_HELP
                 "  --use-adapter NAME   the write model's adapter (default: the only adapter\n"
                 "                       when exactly one is loaded, else the base model)\n"
                 "  --delay N            late stopping: cut points compared (default 5, 0: stop\n"
                 "                       at the first \"})\")\n"
                 "  --max-tokens N       tokens written per sentence (default 256)\n"
                 "  --window N           preceding sentences in the prompt (default: context/40)\n"
                 "  --batch N            sentences decoded together (default 16)\n"
                 "  --chunk N            sentences queued per scheduling round (default 4096)\n"
                 "  --trace FILE         JSONL: what the model wrote for each sentence\n");
}

static int parse_args(int argc, char **argv, struct annotate_opts *o)
{
    memset(o, 0, sizeof(*o));
    cli_memory_opts_default(&o->mem);
    mw_options_default(&o->mw);
    o->batch = 16;
    o->chunk = 4096;
    o->corpus = calloc((size_t)argc, sizeof(char *));
    if (!o->corpus) return -1;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        int r;
        if ((r = cli_model_opt(argc, argv, &i, &o->model)) ||
            (r = cli_memory_opt(argc, argv, &i, &o->mem))) {
            if (r < 0) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--use-adapter", &v))) {
            if (r < 0) return -1;
            o->use_adapter = v;
        } else if ((r = cli_opt(argc, argv, &i, "--trace", &v))) {
            if (r < 0) return -1;
            o->trace = v;
        } else if ((r = cli_opt(argc, argv, &i, "--delay", &v))) {
            if (r < 0 || cli_int("--delay", v, 0, 1000, &o->mw.delay)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--max-tokens", &v))) {
            if (r < 0 || cli_int("--max-tokens", v, 1, 1 << 20, &o->mw.max_tokens)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--window", &v))) {
            if (r < 0 || cli_int("--window", v, 0, 1 << 20, &o->mw.window)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--batch", &v))) {
            if (r < 0 || cli_int("--batch", v, 1, 4096, &o->batch)) return -1;
        } else if ((r = cli_opt(argc, argv, &i, "--chunk", &v))) {
            if (r < 0 || cli_int("--chunk", v, 1, 1 << 24, &o->chunk)) return -1;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "memllm annotate: unknown option '%s' (see --help)\n", argv[i]);
            return -1;
        } else {
            o->corpus[o->n_corpus++] = argv[i];
        }
    }
    if (cli_model_ready("annotate", &o->model)) return -1;
    if (!o->mem.dir) {
        fprintf(stderr, "memllm annotate: --memory DIR is required\n");
        return -1;
    }
    if (o->n_corpus == 0) {
        fprintf(stderr, "memllm annotate: give the corpus files (see --help)\n");
        return -1;
    }
    return 0;
}

/* --- a set of document ids --------------------------------------------------------------- */

struct id_set {
    char **slot; /* open addressing; NULL: empty */
    size_t cap, n;
};

static uint64_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static int id_set_has(const struct id_set *set, const char *id)
{
    if (set->cap == 0) return 0;
    for (size_t i = hash_id(id) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
        if (!set->slot[i]) return 0;
        if (!strcmp(set->slot[i], id)) return 1;
    }
}

/* Adds id (copied); 0 if it was there already, 1 if added, -1 when OOM. */
static int id_set_add(struct id_set *set, const char *id)
{
    if (id_set_has(set, id)) return 0;
    if (2 * (set->n + 1) > set->cap) {
        size_t cap = set->cap ? 2 * set->cap : 1024;
        char **slot = calloc(cap, sizeof(*slot));
        if (!slot) return -1;
        for (size_t k = 0; k < set->cap; k++) {
            if (!set->slot[k]) continue;
            size_t i = hash_id(set->slot[k]) & (cap - 1);
            while (slot[i])
                i = (i + 1) & (cap - 1);
            slot[i] = set->slot[k];
        }
        free(set->slot);
        set->slot = slot;
        set->cap = cap;
    }
    size_t i = hash_id(id) & (set->cap - 1);
    while (set->slot[i])
        i = (i + 1) & (set->cap - 1);
    if (!(set->slot[i] = strdup(id))) return -1;
    set->n++;
    return 1;
}

static void id_set_free(struct id_set *set)
{
    for (size_t i = 0; i < set->cap; i++)
        free(set->slot[i]);
    free(set->slot);
}

/* --- documents ----------------------------------------------------------------------------- */

struct doc {
    struct mw_document d;
    char *id;
    char **sentences;
};

static void doc_free(struct doc *d)
{
    for (int i = 0; i < d->d.n_sentences; i++)
        free(d->sentences[i]);
    free(d->sentences);
    free(d->id);
}

static int doc_set_id(struct doc *d, const char *id, const char *where, struct mm_err *err)
{
    if (mm_text_check("document id", id, err)) {
        mm_err_prefix(err, "%s", where);
        return -1;
    }
    if (!(d->id = strdup(id))) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    d->d.id = d->id;
    return 0;
}

static int doc_push(struct doc *d, char *sentence, int *cap, struct mm_err *err)
{
    if (!sentence) return -1;
    if (d->d.n_sentences == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        char **s = realloc(d->sentences, (size_t)*cap * sizeof(*s));
        if (!s) {
            free(sentence);
            mm_err_set(err, "out of memory");
            return -1;
        }
        d->sentences = s;
    }
    d->sentences[d->d.n_sentences++] = sentence;
    d->d.sentences = (const char *const *)d->sentences;
    return 0;
}

static int doc_from_text(struct doc *d, const char *text, size_t len, struct mm_err *err)
{
    struct sentence_span *sp;
    size_t n;
    if (sentences_split(text, len, &sp, &n, err)) return -1;
    int cap = 0, rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = doc_push(d, sentence_text(text, &sp[i], err), &cap, err);
    free(sp);
    return rc;
}

/* {"id", "text"} or {"title", "sents": [[tokens]]}. */
static int doc_from_json(struct doc *d, json_t *obj, const char *where, struct mm_err *err)
{
    json_t *id = json_object_get(obj, "id"), *text = json_object_get(obj, "text");
    json_t *title = json_object_get(obj, "title"), *sents = json_object_get(obj, "sents");
    char num[32];
    if (json_is_integer(id)) {
        snprintf(num, sizeof(num), "%lld", (long long)json_integer_value(id));
        if (doc_set_id(d, num, where, err)) return -1;
    } else if (json_is_string(id) || json_is_string(title)) {
        if (doc_set_id(d, json_string_value(json_is_string(id) ? id : title), where, err))
            return -1;
    } else {
        mm_err_set(err, "%s: a document needs a string or integer \"id\" (or a \"title\")", where);
        return -1;
    }
    if (json_is_string(text))
        return doc_from_text(d, json_string_value(text), json_string_length(text), err);
    if (!json_is_array(sents)) {
        mm_err_set(err, "%s: a document needs \"text\" (a string) or \"sents\" (lists of tokens)",
                   where);
        return -1;
    }
    int cap = 0;
    size_t i;
    json_t *toks;
    json_array_foreach(sents, i, toks)
    {
        size_t len = 0, k;
        json_t *t;
        int ok = json_is_array(toks);
        json_array_foreach(toks, k, t)
        {
            ok &= json_is_string(t);
            len += json_string_length(t) + 1;
        }
        if (!ok) {
            mm_err_set(err, "%s: \"sents\"[%zu] must be a list of token strings", where, i);
            return -1;
        }
        char *s = calloc(len + 1, 1), *p = s;
        if (!s) {
            mm_err_set(err, "out of memory");
            return -1;
        }
        json_array_foreach(toks, k, t)
        {
            if (k) *p++ = ' ';
            memcpy(p, json_string_value(t), json_string_length(t));
            p += json_string_length(t);
        }
        if (doc_push(d, s, &cap, err)) return -1;
    }
    return 0;
}

/* The documents of the corpus files, one at a time. */
struct corpus {
    char **paths;
    int n_paths, path;
    FILE *f;        /* the open .jsonl file */
    long line;      /* its line number */
    json_t *array;  /* the loaded .json file */
    size_t element; /* next array element */
    char *buf;      /* getline's */
    size_t buf_cap;
};

enum file_kind { FILE_TEXT, FILE_JSONL, FILE_JSON_ARRAY };

static enum file_kind kind_of(const char *path)
{
    size_t n = strlen(path);
    if (n > 6 && !strcmp(path + n - 6, ".jsonl")) return FILE_JSONL;
    if (n > 5 && !strcmp(path + n - 5, ".json")) return FILE_JSON_ARRAY;
    return FILE_TEXT;
}

static char *read_file(const char *path, size_t *len, struct mm_err *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        mm_err_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown) free(buf);
            buf = grown;
        }
    }
    int failed = ferror(f);
    fclose(f);
    if (!buf || failed) {
        free(buf);
        mm_err_set(err, "%s: %s", path, failed ? "read error" : "out of memory");
        return NULL;
    }
    *len = n;
    return buf;
}

/* The next document: 1, 0 at the end, -1 on error. */
static int corpus_next(struct corpus *c, struct doc *d, struct mm_err *err)
{
    memset(d, 0, sizeof(*d));
    char where[4200];
    while (c->path < c->n_paths) {
        const char *path = c->paths[c->path];
        enum file_kind kind = kind_of(path);
        if (kind == FILE_TEXT) {
            c->path++;
            size_t len;
            char *text = read_file(path, &len, err);
            if (!text) return -1;
            const char *slash = strrchr(path, '/');
            int rc = doc_set_id(d, slash ? slash + 1 : path, path, err) ||
                     doc_from_text(d, text, len, err);
            free(text);
            return rc ? -1 : 1;
        }
        if (kind == FILE_JSONL) {
            if (!c->f && !(c->f = fopen(path, "r"))) {
                mm_err_set(err, "%s: %s", path, strerror(errno));
                return -1;
            }
            ssize_t len;
            while ((len = getline(&c->buf, &c->buf_cap, c->f)) >= 0) {
                c->line++;
                if (strspn(c->buf, " \t\r\n") == (size_t)len) continue;
                snprintf(where, sizeof(where), "%s:%ld", path, c->line);
                json_error_t jerr;
                json_t *obj = json_loadb(c->buf, (size_t)len, 0, &jerr);
                if (!json_is_object(obj)) {
                    mm_err_set(err, "%s: %s", where, obj ? "not a JSON object" : jerr.text);
                    json_decref(obj);
                    return -1;
                }
                int rc = doc_from_json(d, obj, where, err);
                json_decref(obj);
                return rc ? -1 : 1;
            }
            fclose(c->f);
            c->f = NULL;
            c->line = 0;
            c->path++;
            continue;
        }
        if (!c->array) {
            json_error_t jerr;
            c->array = json_load_file(path, 0, &jerr);
            if (!json_is_array(c->array)) {
                mm_err_set(err, "%s: %s", path,
                           c->array ? "not a JSON array of documents" : jerr.text);
                return -1;
            }
            c->element = 0;
        }
        if (c->element < json_array_size(c->array)) {
            snprintf(where, sizeof(where), "%s: document %zu", path, c->element);
            json_t *obj = json_array_get(c->array, c->element++);
            if (!json_is_object(obj)) {
                mm_err_set(err, "%s: not a JSON object", where);
                return -1;
            }
            return doc_from_json(d, obj, where, err) ? -1 : 1;
        }
        json_decref(c->array);
        c->array = NULL;
        c->path++;
    }
    return 0;
}

/* How many documents the corpus holds (for the progress bar); reading the
 * files first also reports a missing one before any work is done. */
static int count_documents(char **paths, int n, int64_t *total, struct mm_err *err)
{
    *total = 0;
    for (int i = 0; i < n; i++) {
        enum file_kind kind = kind_of(paths[i]);
        if (kind == FILE_JSON_ARRAY) {
            json_error_t jerr;
            json_t *a = json_load_file(paths[i], 0, &jerr);
            if (!json_is_array(a)) {
                mm_err_set(err, "%s: %s", paths[i],
                           a ? "not a JSON array of documents" : jerr.text);
                json_decref(a);
                return -1;
            }
            *total += (int64_t)json_array_size(a);
            json_decref(a);
            continue;
        }
        FILE *f = fopen(paths[i], "r");
        if (!f) {
            mm_err_set(err, "%s: %s", paths[i], strerror(errno));
            return -1;
        }
        if (kind == FILE_TEXT) {
            (*total)++;
        } else {
            char *line = NULL;
            size_t cap = 0;
            ssize_t len;
            while ((len = getline(&line, &cap, f)) >= 0)
                *total += strspn(line, " \t\r\n") != (size_t)len;
            free(line);
        }
        fclose(f);
    }
    return 0;
}

static void corpus_close(struct corpus *c)
{
    if (c->f) fclose(c->f);
    json_decref(c->array);
    free(c->buf);
}

/* --- the job ------------------------------------------------------------------------------- */

struct annotate_run {
    const struct annotate_opts *o;
    struct memllm_writer *w;
    struct id_set done;
    int done_fd;
    FILE *trace;
    struct progress bar;
    char label[128];
    int64_t docs_done, docs_skipped;
    double start;
};

/* Reads DIR/annotate.done: the ids of finished documents, one per line. A
 * last line without its newline was cut short by a crash: not finished. */
static int load_done(struct annotate_run *run, const char *path, struct mm_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (errno == ENOENT) return 0;
        mm_err_set(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) > 0) {
        if (line[len - 1] != '\n') break;
        line[len - 1] = 0;
        if (id_set_add(&run->done, line) < 0) {
            mm_err_set(err, "out of memory");
            rc = -1;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

static int open_done(struct annotate_run *run, struct mm_err *err)
{
    const char *dir = run->o->mem.dir;
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        mm_err_set(err, "%s: %s", dir, strerror(errno));
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/" DONE_FILE, dir);
    if (load_done(run, path, err)) return -1;
    run->done_fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (run->done_fd < 0) {
        mm_err_set(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

static void update_bar(struct annotate_run *run, int final)
{
    const struct mw_stats *st = memllm_writer_stats(run->w);
    double t = progress_now() - run->start;
    snprintf(run->label, sizeof(run->label), "annotate: %lld triples, %.1f triples/s",
             (long long)st->facts, t > 0 ? (double)st->facts / t : 0.0);
    int64_t done = run->docs_done + run->docs_skipped;
    if (final)
        progress_finish(&run->bar, done, st->sentences, "sentences");
    else
        progress_update(&run->bar, done, st->sentences, "sentences");
}

/* A document's facts are acknowledged: record it as finished. */
static int document_done(void *ctx, const struct mw_document *doc, struct mm_err *err)
{
    struct annotate_run *run = ctx;
    size_t len = strlen(doc->id);
    char *line = malloc(len + 1);
    if (!line) {
        mm_err_set(err, "out of memory");
        return -1;
    }
    memcpy(line, doc->id, len);
    line[len] = '\n';
    ssize_t wrote = write(run->done_fd, line, len + 1);
    free(line);
    if (wrote != (ssize_t)(len + 1) || fsync(run->done_fd) != 0) {
        mm_err_set(err, "%s/" DONE_FILE ": %s", run->o->mem.dir, strerror(errno));
        return -1;
    }
    run->docs_done++;
    update_bar(run, 0);
    return 0;
}

static int sentence_done(void *ctx, const struct mw_sentence_result *r, struct mm_err *err)
{
    struct annotate_run *run = ctx;
    if (!run->trace) return 0;
    json_t *facts = json_array();
    for (int i = 0; i < r->n_facts; i++)
        json_array_append_new(facts,
                              json_pack("[sss]", r->facts[i].s, r->facts[i].r, r->facts[i].o));
    json_t *line =
        json_pack("{s:s, s:i, s:s, s:o, s:i, s:i, s:i, s:s}", "doc", r->doc->id, "sentence",
                  r->sentence, "written", r->written, "facts", facts, "malformed", r->malformed,
                  "cuts", r->cuts, "tokens", r->tokens, "finish", r->finish);
    int bad = !line || json_dumpf(line, run->trace, JSON_COMPACT | JSON_ENSURE_ASCII) ||
              fputc('\n', run->trace) == EOF;
    json_decref(line);
    if (bad) {
        mm_err_set(err, "%s: cannot write", run->o->trace);
        return -1;
    }
    return 0;
}

/* The documents of one scheduling round: the writer points into them until
 * the round has run. */
struct round {
    struct doc **docs;
    int n, cap, sentences;
};

static int round_add(struct round *r, struct doc *d, struct mm_err *err)
{
    if (r->n == r->cap) {
        int cap = r->cap ? 2 * r->cap : 64;
        struct doc **grown = realloc(r->docs, (size_t)cap * sizeof(*grown));
        if (!grown) {
            mm_err_set(err, "out of memory");
            return -1;
        }
        r->docs = grown;
        r->cap = cap;
    }
    r->docs[r->n++] = d;
    r->sentences += d->d.n_sentences;
    return 0;
}

static void round_clear(struct round *r)
{
    for (int i = 0; i < r->n; i++) {
        doc_free(r->docs[i]);
        free(r->docs[i]);
    }
    r->n = r->sentences = 0;
}

static int round_run(struct annotate_run *run, struct round *r, struct mm_err *err)
{
    int rc = memllm_writer_run(run->w, 512, err);
    memllm_writer_clear(run->w);
    round_clear(r);
    return rc;
}

static int write_adapter(struct engine *e, const struct annotate_opts *o, struct mm_err *err)
{
    if (o->use_adapter) return engine_adapter(e, o->use_adapter, err);
    return e->n_adapters == 1 && !e->merged ? 0 : -1;
}

static int annotate(struct annotate_run *run, struct engine *e, struct mm_memory *m,
                    struct mm_err *err)
{
    const struct annotate_opts *o = run->o;
    struct mw_options mw = o->mw;
    mw.adapter = write_adapter(e, o, err);
    if (o->use_adapter && mw.adapter < 0) return -1;
    struct mw_callbacks cb = {.sentence = sentence_done, .document = document_done, .ctx = run};
    if (!(run->w = memllm_writer_new(e, m, &mw, &cb, err))) return -1;
    if (open_done(run, err)) return -1;
    if (run->done.n)
        fprintf(stderr, "memllm annotate: %zu documents already done (%s/" DONE_FILE ")\n",
                run->done.n, o->mem.dir);
    int64_t total;
    if (count_documents(o->corpus, o->n_corpus, &total, err)) return -1;
    run->start = progress_now();
    progress_start(&run->bar, run->label, total);
    struct round r = {0};
    struct id_set seen = {0};
    struct corpus c = {.paths = o->corpus, .n_paths = o->n_corpus};
    int rc = 0;
    for (;;) {
        struct doc *d = calloc(1, sizeof(*d));
        if (!d) {
            mm_err_set(err, "out of memory");
            rc = -1;
            break;
        }
        int got = corpus_next(&c, d, err);
        int fresh = got > 0 ? id_set_add(&seen, d->id) : 0;
        if (fresh > 0 && id_set_has(&run->done, d->id)) {
            run->docs_skipped++;
            doc_free(d);
            free(d);
            continue;
        }
        if (got > 0 && fresh == 0)
            mm_err_set(err, "document id '%s' appears twice in the corpus", d->id);
        else if (got > 0 && fresh < 0)
            mm_err_set(err, "out of memory");
        if (got <= 0 || fresh <= 0 || round_add(&r, d, err)) {
            doc_free(d);
            free(d);
            rc = got == 0 ? 0 : -1;
            break;
        }
        if (memllm_writer_add(run->w, &d->d, err) ||
            (r.sentences >= o->chunk && round_run(run, &r, err))) {
            rc = -1;
            break;
        }
    }
    if (rc == 0) rc = round_run(run, &r, err);
    round_clear(&r);
    free(r.docs);
    id_set_free(&seen);
    corpus_close(&c);
    if (rc == 0) update_bar(run, 1);
    return rc;
}

static int annotate_job(struct engine *e, struct mm_memory *m, const struct cluster *cl, void *arg,
                        struct mm_err *err)
{
    (void)cl;
    const struct annotate_opts *o = arg;
    struct annotate_run run = {.o = o, .done_fd = -1};
    int rc = 0;
    if (o->trace && !(run.trace = fopen(o->trace, "w"))) {
        mm_err_set(err, "%s: cannot open for writing", o->trace);
        rc = -1;
    }
    if (rc == 0) rc = annotate(&run, e, m, err);
    if (rc == 0) {
        const struct mw_stats *st = memllm_writer_stats(run.w);
        double t = progress_now() - run.start;
        printf("documents: %lld\nalready_done: %lld\nsentences: %lld\nskipped_sentences: %lld\n"
               "tokens: %lld\ntriples: %lld\nmalformed: %lld\nseconds: %.2f\n"
               "sentences_per_s: %.2f\ntriples_per_s: %.2f\n",
               (long long)run.docs_done, (long long)run.docs_skipped, (long long)st->sentences,
               (long long)st->skipped, (long long)st->tokens, (long long)st->facts,
               (long long)st->malformed, t, t > 0 ? (double)st->sentences / t : 0.0,
               t > 0 ? (double)st->facts / t : 0.0);
    }
    if (run.trace && fclose(run.trace) != 0 && rc == 0) {
        mm_err_set(err, "%s: cannot write", o->trace);
        rc = -1;
    }
    if (run.done_fd >= 0) close(run.done_fd);
    id_set_free(&run.done);
    memllm_writer_free(run.w);
    return rc;
}

int cli_annotate(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
    struct annotate_opts o;
    int rc = 2;
    if (parse_args(argc, argv, &o) == 0) {
        o.model.engine.n_slots = o.batch;
        rc = cli_run_with_engine("annotate", &o.model, &o.mem, annotate_job, &o);
    }
    free(o.corpus);
    return rc;
}
