#include "scheduler.h"

#include <stdlib.h>
#include <string.h>

int gen_sequence_push(struct gen_sequence *s, int32_t token, struct mm_err *err)
{
    if (s->n_tokens == s->cap_tokens) {
        int cap = s->cap_tokens ? 2 * s->cap_tokens : 256;
        int32_t *t = realloc(s->tokens, (size_t)cap * sizeof(*t));
        if (t) s->tokens = t;
        size_t *at = t ? realloc(s->text_at, (size_t)cap * sizeof(*at)) : NULL;
        if (!at) {
            mm_err_set(err, "generate: out of memory");
            return -1;
        }
        s->text_at = at;
        s->cap_tokens = cap;
    }
    s->text_at[s->n_tokens] = s->text_len;
    s->tokens[s->n_tokens++] = token;
    return 0;
}

static int append_text(struct gen_sequence *s, const char *p, size_t n, struct mm_err *err)
{
    if (s->text_len + n + 1 > s->text_cap) {
        size_t cap = s->text_cap ? 2 * s->text_cap : 256;
        while (cap < s->text_len + n + 1)
            cap *= 2;
        char *t = realloc(s->text, cap);
        if (!t) {
            mm_err_set(err, "generate: out of memory");
            return -1;
        }
        s->text = t;
        s->text_cap = cap;
    }
    memcpy(s->text + s->text_len, p, n);
    s->text_len += n;
    s->text[s->text_len] = 0;
    return 0;
}

static int record_logprob(struct gen_sequence *s, float lp, struct mm_err *err)
{
    float *l = realloc(s->logprobs, (size_t)(s->n_generated + 1) * sizeof(*l));
    if (!l) {
        mm_err_set(err, "generate: out of memory");
        return -1;
    }
    s->logprobs = l;
    s->logprobs[s->n_generated++] = lp;
    return 0;
}

int gen_sequence_insert(struct gen_sequence *s, const int32_t *tokens, int n, const char *text,
                        size_t len, struct mm_err *err)
{
    if (append_text(s, text, len, err)) return -1;
    for (int i = 0; i < n; i++)
        if (gen_sequence_push(s, tokens[i], err)) return -1;
    return 0;
}

void gen_sequence_truncate(struct gen_sequence *s, int n)
{
    if (n <= 0 || n >= s->n_tokens) return;
    s->n_tokens = n;
    s->text_len = s->text_at[n - 1];
    s->text[s->text_len] = 0;
    if (s->n_past > n - 1) s->n_past = n - 1;
    /* Bytes held back for an incomplete character belonged to cut tokens. */
    s->dec.n_pending = 0;
}

void gen_sequence_cut(struct gen_sequence *s, int from, int to)
{
    if (from < 0 || to <= from || to > s->n_tokens) return;
    memmove(s->tokens + from, s->tokens + to, (size_t)(s->n_tokens - to) * sizeof(*s->tokens));
    memmove(s->text_at + from, s->text_at + to, (size_t)(s->n_tokens - to) * sizeof(*s->text_at));
    s->n_tokens -= to - from;
    if (s->n_past > from) s->n_past = from;
}

static void sequence_free(struct gen_sequence *s)
{
    free(s->tokens);
    free(s->text_at);
    free(s->logprobs);
    free(s->text);
    sampler_free(&s->sampler);
    memset(s, 0, sizeof(*s));
}

static int sequence_start(struct engine *e, struct gen_sequence *s, const struct gen_request *r,
                          int index, int slot, struct mm_err *err)
{
    memset(s, 0, sizeof(*s));
    s->req = r;
    s->index = index;
    s->slot = slot;
    if (r->n_prompt <= 0) {
        mm_err_set(err, "request %d: empty prompt", index);
        return -1;
    }
    if (r->n_prompt >= e->context) {
        mm_err_set(err, "request %d: the prompt has %d tokens, the context holds %d", index,
                   r->n_prompt, e->context);
        return -1;
    }
    if (sampler_init(&s->sampler, &r->sampling, e->vocab, err)) return -1;
    tok_decoder_init(&s->dec, e->tok);
    s->dec.at_start = 0; /* generated text continues the prompt */
    for (int i = 0; i < r->n_prompt; i++)
        if (gen_sequence_push(s, r->prompt[i], err)) goto fail;
    if (append_text(s, "", 0, err)) goto fail;
    return 0;
fail:
    sequence_free(s);
    return -1;
}

size_t gen_sequence_stop_prefix(const struct gen_sequence *s)
{
    size_t hold = 0;
    for (int i = 0; i < s->req->n_stop; i++) {
        size_t sl = strlen(s->req->stop[i]);
        for (size_t k = sl > 1 ? sl - 1 : 0; k > hold; k--)
            if (k <= s->text_len && !memcmp(s->text + s->text_len - k, s->req->stop[i], k)) {
                hold = k;
                break;
            }
    }
    return hold;
}

/* Ends the sequence at the first stop string in its text, if any. Only the
 * tail that the last piece could have completed is searched. */
static void check_stop_strings(struct gen_sequence *s, size_t piece_len)
{
    for (int i = 0; i < s->req->n_stop; i++) {
        size_t sl = strlen(s->req->stop[i]);
        if (sl == 0) continue;
        size_t from = s->text_len > piece_len + sl ? s->text_len - piece_len - sl : 0;
        char *hit = strstr(s->text + from, s->req->stop[i]);
        if (hit) {
            s->text_len = (size_t)(hit - s->text);
            s->text[s->text_len] = 0;
            s->finish = "stop";
        }
    }
}

static int after_sample(struct engine *e, struct gen_sequence *s, int32_t tok, float lp,
                        char *piece, size_t piece_cap, const struct scheduler_hooks *h,
                        struct mm_err *err)
{
    s->n_banned = 0;
    if (tok == tok_eos(e->tok)) {
        s->finish = "eos";
        return 0;
    }
    for (int i = 0; i < s->req->n_stop_tokens; i++)
        if (tok == s->req->stop_tokens[i]) {
            s->finish = "stop";
            return 0;
        }
    if (gen_sequence_push(s, tok, err) || record_logprob(s, lp, err)) return -1;
    int n = tok_decoder_push(&s->dec, tok, piece, piece_cap);
    if (n < 0) n = 0;
    size_t before = s->text_len;
    if (append_text(s, piece, (size_t)n, err)) return -1;
    s->text_at[s->n_tokens - 1] = s->text_len;
    check_stop_strings(s, (size_t)n);
    if (h && h->on_token) {
        size_t shown = s->text_len > before ? s->text_len - before : 0;
        if (h->on_token(h->ctx, s, tok, s->text + before, shown, err)) return -1;
    }
    if (!s->finish && s->n_generated >= s->req->max_tokens) s->finish = "length";
    if (!s->finish && s->n_tokens >= e->context) s->finish = "length";
    return 0;
}

static int finish_sequence(struct gen_sequence *s, char *piece, size_t piece_cap,
                           const struct scheduler_hooks *h, struct mm_err *err)
{
    if (strcmp(s->finish, "stop") != 0) {
        char *tail = piece;
        int n = tok_decoder_flush(&s->dec, tail, piece_cap);
        if (n > 0 && append_text(s, tail, (size_t)n, err)) return -1;
    }
    return h && h->on_finish ? h->on_finish(h->ctx, s, err) : 0;
}

/* What plan_reuse answers when the request should wait a step. */
#define REUSE_WAIT -1

/* How much of r's prompt can start from keys and values already computed,
 * and from which slot: a running sequence's context (its tokens up to
 * n_past) or a parked prefix, under the same adapter. The last prompt token
 * is always fed: its logits start the answer. Returns REUSE_WAIT when a
 * running sequence is still reading a prompt that shares at least a page
 * more with r (the next sentence of a document in the write loop): r waits
 * for it rather than computing the same prefix twice. */
static int plan_reuse(struct engine *e, const struct gen_sequence *seqs, const int *active,
                      const struct gen_request *r, int *from)
{
    if (!e->cache_slots) return 0;
    int limit = r->n_prompt - 1, later = 0;
    int best = prefix_cache_best(&e->prefix, r->prompt, limit, r->adapter, from);
    for (int sl = 0; sl < e->n_slots; sl++) {
        const struct gen_sequence *s = &seqs[sl];
        if (!active[sl] || s->req->adapter != r->adapter) continue;
        int now = prefix_common(r->prompt, limit, s->tokens, s->n_past);
        if (now > best) {
            best = now;
            *from = sl;
        }
        int soon = prefix_common(r->prompt, limit, s->tokens, s->n_tokens);
        later = soon > later ? soon : later;
    }
    return later >= best + K_KV_PAGE ? REUSE_WAIT : best;
}

/* Starts request r in slot sl, on top of the keys and values plan_reuse
 * found (reuse positions of slot `from`). */
static int sequence_start_reusing(struct engine *e, struct gen_sequence *s,
                                  const struct gen_request *r, int index, int sl, int reuse,
                                  int from, struct mm_err *err)
{
    if (sequence_start(e, s, r, index, sl, err)) return -1;
    if (reuse > 0 && engine_kv_share(e, sl, from, reuse, err)) {
        sequence_free(s);
        return -1;
    }
    s->n_past = reuse;
    e->prefix_stats.prompt_tokens += r->n_prompt;
    e->prefix_stats.reused_tokens += reuse;
    return 0;
}

/* A group of slots (slot % G == group) whose sequences share a batch. Each
 * group has at most one batch in flight: when its logits come back, its
 * sequences sample, finished ones leave, queued requests take their slots,
 * and its next batch goes at once, while the other groups' batches are
 * still in the stages (engine_submit). */
struct group {
    int32_t *tokens, *pos, *slot, *adapter;
    uint8_t *want;
    int cap;                     /* batch tokens */
    struct gen_sequence **owner; /* sequence whose logits a row holds */
    int n_rows;
    float *logits;
    int in_flight;
};

static int groups_alloc(struct group *grp, int G, int n_slots, int max_batch_tokens, int vocab)
{
    for (int g = 0; g < G; g++) {
        struct group *gr = &grp[g];
        const int members = (n_slots - g + G - 1) / G;
        /* Every decoding member feeds its token each step. */
        gr->cap = max_batch_tokens / G > members ? max_batch_tokens / G : members;
        const size_t cap = (size_t)gr->cap;
        gr->tokens = malloc(cap * sizeof(int32_t));
        gr->pos = malloc(cap * sizeof(int32_t));
        gr->slot = malloc(cap * sizeof(int32_t));
        gr->adapter = malloc(cap * sizeof(int32_t));
        gr->want = malloc(cap);
        gr->owner = malloc((size_t)members * sizeof(*gr->owner));
        gr->logits = malloc((size_t)members * (size_t)vocab * sizeof(float));
        if (!gr->tokens || !gr->pos || !gr->slot || !gr->adapter || !gr->want || !gr->owner ||
            !gr->logits)
            return -1;
    }
    return 0;
}

static void groups_free(struct group *grp, int G)
{
    for (int g = 0; grp && g < G; g++) {
        free(grp[g].tokens);
        free(grp[g].pos);
        free(grp[g].slot);
        free(grp[g].adapter);
        free(grp[g].want);
        free(grp[g].owner);
        free(grp[g].logits);
    }
    free(grp);
}

/* The group's batch: its decoding sequences first (one token each), then
 * chunks of the prompts still being read. Returns the row count. */
static int group_batch(struct group *gr, int g, int G, struct gen_sequence *seqs, const int *active,
                       int n_slots)
{
    int n = 0;
    gr->n_rows = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int sl = g; sl < n_slots; sl += G) {
            struct gen_sequence *s = &seqs[sl];
            int pending = active[sl] ? s->n_tokens - s->n_past : 0;
            if (pending <= 0 || (pass == 0) != (pending == 1)) continue;
            int take = pending < gr->cap - n ? pending : gr->cap - n;
            for (int i = 0; i < take; i++, n++) {
                gr->tokens[n] = s->tokens[s->n_past + i];
                gr->pos[n] = s->n_past + i;
                gr->slot[n] = sl;
                gr->adapter[n] = s->req->adapter;
                gr->want[n] = s->n_past + i == s->n_tokens - 1;
                if (gr->want[n]) gr->owner[gr->n_rows++] = s;
            }
            s->n_past += take;
        }
    return n;
}

/* The free slot where the next request joins: in the group, not in flight,
 * with the fewest running sequences (the lowest such slot), so that the
 * groups stay the same size; -1 if none. */
static int join_slot(const struct group *grp, int G, const int *active, int n_slots)
{
    int best = -1, best_running = 0;
    for (int g = 0; g < G; g++) {
        if (grp[g].in_flight) continue;
        int running = 0, free_slot = -1;
        for (int sl = g; sl < n_slots; sl += G) {
            running += active[sl];
            if (!active[sl] && free_slot < 0) free_slot = sl;
        }
        if (free_slot >= 0 && (best < 0 || running < best_running)) {
            best = free_slot;
            best_running = running;
        }
    }
    return best;
}

/* The sequences of a group whose logits came back: each samples (or lets
 * a hook edit it), and those that finish leave their slot. */
static int group_sample(struct engine *e, struct group *gr, int *active, int *running, char *piece,
                        size_t piece_cap, const struct scheduler_hooks *h, struct mm_err *err)
{
    for (int r = 0; r < gr->n_rows; r++) {
        struct gen_sequence *s = gr->owner[r];
        float lp;
        const float *row = gr->logits + (size_t)r * e->vocab;
        if (h && h->before_sample) {
            int act = h->before_sample(h->ctx, s, row, err);
            if (act < 0) return -1;
            if (act > 0) continue;
        }
        int32_t tok = sampler_sample(&s->sampler, row, s->banned, s->n_banned, &lp);
        if (after_sample(e, s, tok, lp, piece, piece_cap, h, err)) return -1;
        /* The new token is fed next step; it has no KV row yet. */
        if (!s->finish) continue;
        /* on_finish may free the request (a served client's) */
        int adapter = s->req->adapter;
        if (finish_sequence(s, piece, piece_cap, h, err)) return -1;
        if (e->cache_slots && prefix_cache_park(&e->prefix, e, s->slot, s->tokens, s->n_past,
                                                adapter, &e->prefix_stats, err))
            return -1;
        active[s->slot] = 0;
        (*running)--;
        sequence_free(s);
    }
    return 0;
}

int scheduler_serve(struct engine *e, const struct gen_source *src, int max_batch_tokens,
                    const struct scheduler_hooks *h, struct mm_err *err)
{
    const int n_slots = e->n_slots;
    const int G = e->flow_groups >= 1 && e->flow_groups <= n_slots ? e->flow_groups : 1;
    if (max_batch_tokens < n_slots) max_batch_tokens = n_slots;
    struct gen_sequence *seqs = calloc((size_t)n_slots, sizeof(*seqs));
    int *active = calloc((size_t)n_slots, sizeof(*active));
    struct group *grp = calloc((size_t)G, sizeof(*grp));
    int *order = malloc((size_t)G * sizeof(*order)); /* groups in flight, oldest first */
    const size_t piece_cap = tok_decoder_max_out(e->tok);
    char *piece = malloc(piece_cap);
    int rc = -1, running = 0, head = 0, in_flight = 0, broken = 0;
    if (!seqs || !active || !grp || !order || !piece ||
        groups_alloc(grp, G, n_slots, max_batch_tokens, e->vocab)) {
        mm_err_set(err, "generate: out of memory");
        goto out;
    }
    /* a request waiting for a prefix (plan_reuse) */
    const struct gen_request *held = NULL;
    int held_index = 0;
    for (;;) {
        /* Queued requests join the groups that are not in flight. */
        for (int sl; (sl = join_slot(grp, G, active, n_slots)) >= 0;) {
            int index = held_index, from = -1;
            const struct gen_request *r = held ? held : src->next(src->ctx, running == 0, &index);
            held = NULL;
            if (!r) break;
            int reuse = r->n_prompt > 0 ? plan_reuse(e, seqs, active, r, &from) : 0;
            if (reuse == REUSE_WAIT) {
                held = r;
                held_index = index;
                break;
            }
            /* The slot's old cache goes: the first batch starts at 0, or
             * at the end of the reused prefix. */
            if (sequence_start_reusing(e, &seqs[sl], r, index, sl, reuse, from, err)) goto out;
            active[sl] = 1;
            running++;
        }
        if (running == 0) break;
        for (int g = 0; g < G; g++) {
            struct group *gr = &grp[g];
            if (gr->in_flight) continue;
            int n = group_batch(gr, g, G, seqs, active, n_slots);
            if (n == 0) continue;
            struct stage_batch batch = {.n = n,
                                        .tokens = gr->tokens,
                                        .pos = gr->pos,
                                        .slot = gr->slot,
                                        .adapter = gr->adapter,
                                        .logits = gr->want};
            if (engine_submit(e, &batch, err)) {
                broken = 1;
                goto out;
            }
            gr->in_flight = 1;
            order[(head + in_flight++) % G] = g;
        }
        if (in_flight == 0) {
            mm_err_set(err, "generate: %d sequences have no token to feed", running);
            goto out;
        }
        struct group *gr = &grp[order[head]];
        head = (head + 1) % G;
        in_flight--;
        gr->in_flight = 0;
        int rows = engine_collect(e, gr->logits, err);
        if (rows < 0) {
            broken = 1;
            goto out;
        }
        if (rows != gr->n_rows) {
            mm_err_set(err, "generate: %d logit rows back for a batch that asked %d", rows,
                       gr->n_rows);
            goto out;
        }
        if (group_sample(e, gr, active, &running, piece, piece_cap, h, err)) goto out;
    }
    rc = 0;
out:
    /* After a hook's failure the other groups' batches are still in the
     * stages: they are taken back, so that the engine serves the next run
     * from a clean start. A failed engine is left as it is (on ranks the
     * job stops at engine_close). */
    for (; !broken && in_flight > 0; in_flight--) {
        struct mm_err ignored = {{0}};
        if (engine_collect(e, grp[order[head]].logits, &ignored) < 0) break;
        head = (head + 1) % G;
    }
    for (int sl = 0; sl < n_slots; sl++)
        if (seqs && active && active[sl]) sequence_free(&seqs[sl]);
    free(seqs);
    free(active);
    groups_free(grp, G);
    free(order);
    free(piece);
    return rc;
}

/* An array of requests as a source: each in turn, then none. */
struct array_source {
    const struct gen_request *reqs;
    int n, next;
};

static const struct gen_request *array_next(void *ctx, int wait, int *index)
{
    (void)wait;
    struct array_source *a = ctx;
    if (a->next == a->n) return NULL;
    *index = a->next;
    return &a->reqs[a->next++];
}

int scheduler_run(struct engine *e, const struct gen_request *reqs, int n_reqs,
                  int max_batch_tokens, const struct scheduler_hooks *h, struct mm_err *err)
{
    struct array_source a = {.reqs = reqs, .n = n_reqs};
    struct gen_source src = {.next = array_next, .ctx = &a};
    return scheduler_serve(e, &src, max_batch_tokens, h, err);
}
