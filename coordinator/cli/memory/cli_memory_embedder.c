/* Which embedder a `memllm memory` command uses (--embedder, documented in
 * `memllm memory --help`):
 *
 *   --embedder fallback     the hashed-trigram fallback (no model)
 *   --embedder DIR          a sentence-transformers model directory
 *   (none), memory exists   the embedder the memory records: the fallback, or
 *                           the model of that name in the models folder
 *   (none), new memory      all-MiniLM-L6-v2 from the models folder when it
 *                           is there, else the fallback, with a warning
 *
 * The models folder is $MEMLLM_MODELS_DIR, else the one this binary was
 * built for (the repository's models/, where deploy/fetch-models.sh puts
 * them; CMake's MEMLLM_MODELS_DIR): never one relative to the current
 * directory, where a command run elsewhere would quietly fall back.
 *
 * A memory's shards refuse vectors of another embedder, so guessing wrong is
 * an error, never a silent mix; reading the recorded name first only spares
 * the user from repeating --embedder on every command. */
#include "cli_memory_internal.h"
#include "embedder_bert.h"
#include "store.pb-c.h"

#include <rocksdb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DEFAULT_MODEL "all-MiniLM-L6-v2"

static const char *models_dir(void)
{
    const char *env = getenv("MEMLLM_MODELS_DIR");
    return env && env[0] ? env : MEMLLM_DEFAULT_MODELS_DIR;
}

static int is_model_dir(const char *dir)
{
    char path[4300];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* The embedder name in the meta record of dir/shard-000 (proto/store.proto,
 * key "meta" of the default column family), read without opening the shard
 * for writing: 1 with name set, 0 when the shard has no meta yet. */
static int recorded_embedder(const char *dir, char *name, size_t cap, struct mm_err *err)
{
    char path[4200];
    snprintf(path, sizeof(path), "%s/shard-000", dir);
    rocksdb_options_t *opt = rocksdb_options_create();
    char *rerr = NULL;
    rocksdb_t *db = rocksdb_open_for_read_only(opt, path, 0, &rerr);
    int rc = -1;
    if (rerr) {
        mm_err_set(err, "%s: %s", path, rerr);
        goto out;
    }
    rocksdb_readoptions_t *ropt = rocksdb_readoptions_create();
    size_t len = 0;
    char *val = rocksdb_get(db, ropt, "meta", 4, &len, &rerr);
    rocksdb_readoptions_destroy(ropt);
    rocksdb_close(db);
    if (rerr) {
        mm_err_set(err, "%s: meta record: %s", path, rerr);
        goto out;
    }
    if (!val) {
        rc = 0;
        goto out;
    }
    Memllm__Store__Meta *m = memllm__store__meta__unpack(NULL, len, (const uint8_t *)val);
    rocksdb_free(val);
    if (!m) {
        mm_err_set(err, "%s: the meta record is damaged", path);
        goto out;
    }
    snprintf(name, cap, "%s", m->embedder);
    memllm__store__meta__free_unpacked(m, NULL);
    rc = 1;
out:
    rocksdb_free(rerr);
    rocksdb_options_destroy(opt);
    return rc;
}

static struct mm_embedder *load(const char *choice, struct mm_err *err)
{
    if (!strcmp(choice, "fallback")) return mm_fallback_embedder_new(err);
    struct mm_embedder *e = mm_bert_embedder_new(choice, err);
    if (!e) mm_err_prefix(err, "--embedder %s", choice);
    return e;
}

/* The model that made a recorded name: the fallback, or the directory named
 * by the name's first part in the models folder. */
static struct mm_embedder *load_recorded(const char *dir, const char *name, struct mm_err *err)
{
    if (!strcmp(name, MM_FALLBACK_EMBEDDER_NAME)) return mm_fallback_embedder_new(err);
    const char *suffix = strstr(name, MM_BERT_EMBEDDER_SUFFIX);
    char model[4200];
    snprintf(model, sizeof(model), "%s/%.*s", models_dir(), suffix ? (int)(suffix - name) : 0,
             name);
    if (!suffix || !is_model_dir(model)) {
        mm_err_set(err,
                   "%s was built with embedder %s; %s%s is not here: pass --embedder with "
                   "its model directory (or set MEMLLM_MODELS_DIR)",
                   dir, name, suffix ? "its model " : "no model", suffix ? model : "");
        return NULL;
    }
    return mm_bert_embedder_new(model, err);
}

struct mm_embedder *cli_memory_embedder(const char *option, const char *dir, int exists,
                                        struct mm_err *err)
{
    if (option) return load(option, err);
    if (exists) {
        char name[1024];
        int found = recorded_embedder(dir, name, sizeof(name), err);
        if (found < 0) return NULL;
        if (found) return load_recorded(dir, name, err);
    }
    char model[4200];
    snprintf(model, sizeof(model), "%s/%s", models_dir(), DEFAULT_MODEL);
    if (is_model_dir(model)) return mm_bert_embedder_new(model, err);
    fprintf(stderr,
            "memllm memory: warning: no %s in %s (deploy/fetch-models.sh, or set "
            "MEMLLM_MODELS_DIR): using the fallback embedder (hashed trigrams, not semantic)\n",
            DEFAULT_MODEL, models_dir());
    return mm_fallback_embedder_new(err);
}
