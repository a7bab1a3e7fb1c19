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

/* Known gap (docs/security.md, reproducer crashes/brown/non-utf8-*, listed
 * in known_unfixed.txt): a word holding a byte that is not UTF-8 makes the
 * vocabulary invalid JSON. With MNEMO_FUZZ_IGNORE_KNOWN set (scripts/fuzz.sh)
 * such inputs skip that check so a run gets past it; delete this once
 * mn_data_vocab_json is fixed. --batch 1: ten sentences load (at --batch 32
 * the split needs 320, so no fuzzed input reached the checks below). */
static bool utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        int len = s[i] < 0x80 ? 1 : (s[i] & 0xe0) == 0xc0 ? 2 : (s[i] & 0xf0) == 0xe0 ? 3 : (s[i] & 0xf8) == 0xf0 ? 4 : 0;
        if (!len || i + (size_t)len > n) return false;
        for (int k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) return false;
        i += (size_t)len;
    }
    return true;
}

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
        bool skip = !v && getenv("MNEMO_FUZZ_IGNORE_KNOWN") && !utf8(data, size);
        if (!skip && (!json_is_array(v) || json_array_size(v) != (size_t)d.nwords)) abort();
        for (size_t i = 0; i < json_array_size(v); i++)
            if (!json_is_string(json_array_get(v, i))) abort();
        json_decref(v);
        free(json);
    }
    mn_data_free(&d);            /* after a failure too, as train's teardown does */
    return 0;
}
