/* tests/fuzz/fuzz_brown.c: the Brown corpus reader (tools/data.c) as the
 * tagger's `--data DIR` reaches it through mn_data_load: the input is the
 * folder's one file ca01 (sentences of word/tag tokens), read with a short
 * --seq so long sentences are cut; the word vocabulary is then written as
 * the checkpoint's mnemo.vocab, which must be a JSON list of every word
 * of the vocabulary. */
#include "fuzz.h"
#include "train.h"
#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* --batch 1: ten sentences load (at --batch 32 the split needs 320, so no
 * fuzzed input would reach the checks below). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[640];
    fuzz_write(path, sizeof path, "ca01", data, size);
    mn_train_cfg c;
    if (mn_cfg_defaults(&c, "tagger")) abort();
    snprintf(c.data, sizeof c.data, "%s", fuzz_dir());
    c.seq = 12;
    c.batch = 1;
    mn_data d;
    if (!mn_data_load(&d, &c)) {
        if (d.nwords < 2 || d.nval < 0 || d.nval > d.nsent) abort();
        for (int64_t i = 0; i < d.nsent * c.seq; i++)
            if (d.words[i] < 0 || d.words[i] >= d.nwords || (d.tags[i] != -100 && (d.tags[i] < 0 || d.tags[i] >= d.ntags))) abort();
        char *json = mn_data_vocab_json(&d);
        json_t *v = json ? json_loads(json, 0, NULL) : NULL;
        if ((!json_is_array(v) || json_array_size(v) != (size_t)d.nwords)) abort();
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!json_is_string(json_array_get(v, i))) abort();
        json_decref(v);
        free(json);
    }
    mn_data_free(&d);            /* after a failure too, as train's teardown does */
    return 0;
}
