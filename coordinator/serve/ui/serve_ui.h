/* The page memllm serve answers GET /ui with: coordinator/serve/ui/ui.html,
 * which the build embeds (serve_ui_page.c in the build tree). */
#ifndef MEMLLM_SERVE_UI_H
#define MEMLLM_SERVE_UI_H

#include <stddef.h>

extern const unsigned char serve_ui_html[];
extern const size_t serve_ui_html_len;

#endif
