/* Token embedding lookup: one table row per token, dequantized. */
#include "internal.h"

void k_embedding_forward(float *out, const int32_t *ids, int n, const struct k_matrix *table)
{
    const char *data = table->data;
    for (int t = 0; t < n; t++)
        mm_dequantize_row(table->dtype, data + (int64_t)ids[t] * (int64_t)table->row_bytes,
                          out + (int64_t)t * table->cols, table->cols);
}
