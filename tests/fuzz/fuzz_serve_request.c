/* libFuzzer target: arbitrary bytes as the body of POST /v1/completions
 * and /v1/chat/completions. The parser must accept or refuse every input
 * without crashing or leaking; a refusal is a 4xx with an error type and a
 * message, and an accepted request holds what the engine needs. */
#include <stdlib.h>
#include <string.h>

#include "serve_request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct serve_request_limits lim = {.max_tokens = 4096};
    for (int route = SERVE_COMPLETIONS; route <= SERVE_CHAT; route++) {
        struct serve_request r;
        struct serve_error e;
        if (serve_request_parse((const char *)data, size, (enum serve_route)route, &lim, &r, &e)) {
            /* 500 only when memory runs out */
            int client = e.status >= 400 && e.status < 500;
            if (!(client || e.status == 500) || !e.type || !e.message[0]) abort();
            continue;
        }
        if (route == SERVE_COMPLETIONS ? !r.prompt || !r.prompt[0] : r.n_messages < 1) abort();
        if (r.max_tokens < 0 || r.max_tokens > lim.max_tokens || r.n_stop > SERVE_MAX_STOPS)
            abort();
        for (int i = 0; i < r.n_messages; i++)
            if (!r.messages[i].role || !r.messages[i].content) abort();
        serve_request_free(&r);
    }
    return 0;
}
