/* Re-DocRED dev, which the eval tests take their documents from (the
 * repository's copy, data/redocred/dev_revised.json; never the test
 * split). */
#ifndef MEMLLM_TESTS_REDOCRED_DEV_H
#define MEMLLM_TESTS_REDOCRED_DEV_H

#include <stdio.h>

#include <jansson.h>

#include "check.h"

/* DATA_DIR/redocred/dev_revised.json, all 500 documents; a failed
 * REQUIRE naming the file otherwise. */
static inline json_t *must_load_dev(const char *data_dir)
{
    char dev[1200];
    snprintf(dev, sizeof(dev), "%s/redocred/dev_revised.json", data_dir);
    json_error_t jerr;
    json_t *all = json_load_file(dev, 0, &jerr);
    REQUIRE(json_array_size(all) == 500, "%s: %s", dev, all ? "not 500 documents" : jerr.text);
    return all;
}

#endif
