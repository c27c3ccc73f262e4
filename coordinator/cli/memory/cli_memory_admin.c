/* memllm memory backup / restore / verify. */
#include "cli_memory_internal.h"

#include <stdio.h>

int cli_memory_backup(struct cli_memory *c)
{
    if (c->nargs != 1) return cli_memory_fail("backup", "give the backup directory");
    struct mm_err err;
    if (mm_memory_backup(c->m, c->args[0], &err) != 0) return cli_memory_fail("backup", err.msg);
    printf("backup: %s (%u shards)\n", c->args[0], mm_memory_shards(c->m));
    return 0;
}

int cli_memory_restore(struct cli_memory *c)
{
    if (c->nargs != 1) return cli_memory_fail("restore", "give the backup directory");
    struct mm_err err;
    if (mm_memory_restore(c->m, c->args[0], &err) != 0) return cli_memory_fail("restore", err.msg);
    printf("restored: %s\n", c->args[0]);
    return 0;
}

int cli_memory_verify(struct cli_memory *c)
{
    if (c->nargs) return cli_memory_fail("verify", "takes no arguments");
    struct mm_verify_report r;
    struct mm_err err;
    if (mm_memory_verify(c->m, c->repair, &r, &err) != 0) return cli_memory_fail("verify", err.msg);
    printf("forward_copies: %llu\n", (unsigned long long)r.forward);
    printf("reverse_copies: %llu\n", (unsigned long long)r.reverse);
    printf("missing_reverse: %llu\n", (unsigned long long)r.missing_reverse);
    printf("orphan_reverse: %llu\n", (unsigned long long)r.orphan_reverse);
    printf("misplaced: %llu\n", (unsigned long long)r.misplaced);
    if (c->repair) printf("repaired: %llu\n", (unsigned long long)r.repaired);
    int broken = r.missing_reverse || r.orphan_reverse;
    if (r.misplaced || (broken && !c->repair)) return 1;
    return 0;
}
