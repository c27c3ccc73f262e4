/* memllm train: LoRA finetuning on the JSONL examples `memllm data`
 * writes, one process or data parallel under mpirun. */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_args.h"
#include "trainer.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: [mpirun -np R] memllm train --model PATH --data TRAIN.jsonl [--val VAL.jsonl]\n"
            "                      --out ADAPTER_DIR [options]\n\n"
            "LoRA finetuning (MemLLM's MR and MW adapters) on the examples `memllm data`\n"
            "writes. Writes a PEFT adapter (adapter_config.json, adapter_model.safetensors)\n"
            "to ADAPTER_DIR, with loss.csv and loss.png beside it, and checkpoint/ for\n"
            "--resume. Under mpirun each of the R ranks runs its share of every global\n"
            "batch; the adapter is the same bits for any R.\n\n"
            "  --model PATH         base model: GGUF file (quantized stays quantized, as\n"
            "                       QLoRA) or HF directory (required)\n"
            "  --data FILE          training examples, JSONL (required)\n"
            "  --val FILE           validation examples, JSONL\n"
            "  --out DIR            where the adapter goes (required)\n"
            "  --init DIR           start from this PEFT adapter (its rank, alpha, targets)\n"
            "  --rank N             LoRA rank (16)\n"
            "  --alpha X            LoRA alpha (8)\n"
            "  --dropout X          LoRA dropout (0.1)\n"
            "  --targets LIST       modules (q,k,v,o,gate,up,down,lm_head)\n"
            "  --rank-pattern JSON  PEFT rank_pattern, e.g. '{\"v_proj\": 4}'\n"
            "  --alpha-pattern JSON PEFT alpha_pattern\n"
            "  --trainable-tokens L token ids whose embedding rows train (PEFT's\n"
            "                       trainable_token_indices): 'auto' (default: \"({\", \"})\",\n"
            "                       \"-->\" where each is one token), 'none', or ids a,b,c\n"
            "  --lr X               peak learning rate (2e-5)\n"
            "  --warmup N           linear warmup steps, then linear decay to 0 (0)\n"
            "  --weight-decay X     AdamW decoupled weight decay (0)\n"
            "  --max-grad-norm X    clip the gradient's L2 norm (1.0; 0: off)\n"
            "  --epochs N           passes over the data (2)\n"
            "  --batch N            examples per optimizer step (96)\n"
            "  --max-steps N        stop after N steps (the schedule still spans all)\n"
            "  --max-tokens N       longest example allowed (1024, at most the context)\n"
            "  --seed N             shuffling, initialisation and dropout (0)\n"
            "  --val-every N        validation loss every N steps (0: at the end)\n"
            "  --save-every N       checkpoint every N steps (0: at the end)\n"
            "  --resume             continue from OUT/checkpoint (same data and options)\n"
            "  --dtype f32|f16|bf16 of the saved adapter (f32)\n"
            "  --threads N          threads (OpenMP): a step's examples run N at a time,\n"
            "                       each on one thread with its own activations\n"
            "  --device cpu|cuda    where the forward and backward run (cpu; cuda: each\n"
            "                       rank on its node-local GPU, the base in f32 there)\n"
            "  --quiet              no progress lines\n");
}

static int parse_tokens(const char *v, struct trainer_options *o)
{
    if (!strcmp(v, "auto")) return 0;
    o->auto_tokens = 0;
    if (!strcmp(v, "none")) return 0;
    return cli_int_list("--trainable-tokens", v, o->lora.token_ids, TRAIN_MAX_TOKENS,
                        &o->lora.n_tokens);
}

static int parse_pattern(const char *name, const char *v, json_t **out)
{
    json_error_t jerr;
    json_t *j = json_loads(v, 0, &jerr);
    if (!json_is_object(j)) {
        fprintf(stderr, "memllm train: %s: not a JSON object of module -> number (%s)\n", name,
                j ? "wrong type" : jerr.text);
        json_decref(j);
        return -1;
    }
    json_decref(*out);
    *out = j;
    return 0;
}

static int parse_dtype(const char *v, enum mm_dtype *d)
{
    if (!strcmp(v, "f32"))
        *d = MM_F32;
    else if (!strcmp(v, "f16"))
        *d = MM_F16;
    else if (!strcmp(v, "bf16"))
        *d = MM_BF16;
    else {
        fprintf(stderr, "memllm train: --dtype '%s': use f32, f16 or bf16\n", v);
        return -1;
    }
    return 0;
}

static int parse_device(const char *v, int *cuda)
{
    if (strcmp(v, "cpu") && strcmp(v, "cuda")) {
        fprintf(stderr, "memllm train: --device: '%s' is not cpu or cuda\n", v);
        return -1;
    }
    *cuda = !strcmp(v, "cuda");
    return 0;
}

/* Consumes one option; 1 done, 0 not an option of train, -1 bad value. */
static int parse_opt(int argc, char **argv, int *i, struct trainer_options *o, int *threads)
{
    const char *v;
    int r;
    struct mm_err err = {{0}};
#define STR(name, field)                                                                           \
    if ((r = cli_opt(argc, argv, i, name, &v))) return r < 0 ? -1 : (o->field = v, 1)
#define NUM(name, call)                                                                            \
    if ((r = cli_opt(argc, argv, i, name, &v))) return r < 0 || (call) ? -1 : 1
    STR("--model", model);
    STR("--data", data);
    STR("--val", val);
    STR("--out", out);
    STR("--init", init);
    float f;
    NUM("--rank", cli_int("--rank", v, 1, 4096, &o->lora.rank));
    NUM("--alpha", cli_float("--alpha", v, 1e-6, 1e6, &f) || (o->lora.alpha = f, 0));
    NUM("--dropout", cli_float("--dropout", v, 0, 0.99, &o->lora.dropout));
    if ((r = cli_opt(argc, argv, i, "--targets", &v))) {
        if (r < 0) return -1;
        if (train_parse_targets(v, &o->lora.targets, &err)) {
            fprintf(stderr, "memllm train: --targets: %s\n", err.msg);
            return -1;
        }
        return 1;
    }
    NUM("--rank-pattern", parse_pattern("--rank-pattern", v, &o->lora.rank_pattern));
    NUM("--alpha-pattern", parse_pattern("--alpha-pattern", v, &o->lora.alpha_pattern));
    NUM("--trainable-tokens", parse_tokens(v, o));
    NUM("--lr", cli_float("--lr", v, 0, 10, &f) || (o->lr = f, 0));
    NUM("--warmup", cli_int("--warmup", v, 0, 1 << 30, &o->warmup));
    NUM("--weight-decay", cli_float("--weight-decay", v, 0, 10, &f) || (o->weight_decay = f, 0));
    NUM("--max-grad-norm",
        cli_float("--max-grad-norm", v, 0, 1e9, &f) || (o->max_grad_norm = f, 0));
    NUM("--epochs", cli_int("--epochs", v, 1, 1 << 20, &o->epochs));
    NUM("--batch", cli_int("--batch", v, 1, 1 << 24, &o->batch));
    NUM("--max-steps", cli_int("--max-steps", v, 1, 1 << 30, &o->max_steps));
    NUM("--max-tokens", cli_int("--max-tokens", v, 2, 1 << 24, &o->max_tokens));
    int seed;
    NUM("--seed", cli_int("--seed", v, 0, 0x7fffffff, &seed) || (o->seed = (uint64_t)seed, 0));
    NUM("--val-every", cli_int("--val-every", v, 0, 1 << 30, &o->val_every));
    NUM("--save-every", cli_int("--save-every", v, 0, 1 << 30, &o->save_every));
    NUM("--dtype", parse_dtype(v, &o->dtype));
    NUM("--threads", cli_int("--threads", v, 1, 4096, threads));
    NUM("--device", parse_device(v, &o->cuda));
#undef STR
#undef NUM
    if (!strcmp(argv[*i], "--resume")) return o->resume = 1;
    if (!strcmp(argv[*i], "--quiet")) return o->quiet = 1;
    return 0;
}

int cli_train(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    struct trainer_options o;
    trainer_options_default(&o);
    int threads = 0, status = 2;
    for (int i = 1; i < argc; i++) {
        int r = parse_opt(argc, argv, &i, &o, &threads);
        if (r < 0) goto done;
        if (r == 0) {
            fprintf(stderr, "memllm train: unexpected argument '%s' (see --help)\n", argv[i]);
            goto done;
        }
    }
    if (!o.model || !o.data || !o.out) {
        fprintf(stderr, "memllm train: --model, --data and --out are required (see --help)\n");
        goto done;
    }
    if (threads > 0) omp_set_num_threads(threads);
    struct cluster c;
    struct mm_err err = {{0}};
    cluster_init_peers(&c);
    status = 0;
    if (trainer_run(&o, &c, &err)) {
        fprintf(stderr, "memllm train: %s\n", err.msg);
        status = 1;
        cluster_abort(&c, 1);
    }
    cluster_finish(&c);
done:
    json_decref(o.lora.rank_pattern);
    json_decref(o.lora.alpha_pattern);
    return status;
}
