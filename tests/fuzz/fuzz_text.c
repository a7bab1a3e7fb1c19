/* tests/fuzz/fuzz_text.c: the text reader (tools/text.c) as a character
 * model's `--data FILE` reaches it through mn_data_load: read, split into
 * training and validation for a small batch, the vocabulary written as the
 * checkpoint's mnemo.vocab and read back as sample and eval read it, then
 * the input re-encoded with that vocabulary. */
#include "fuzz.h"
#include "train.h"
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mn_train_cfg c;
    char path[sizeof c.data];
    fuzz_write(path, sizeof path, "input.txt", data, size);
    if (mn_cfg_defaults(&c, "lstm")) abort();
    snprintf(c.data, sizeof c.data, "%s", path);
    c.batch = 2;
    c.seq = 4;
    mn_data d;
    if (!mn_data_load(&d, &c)) {
        if (mn_data_items(&d, &c, false) < 1 || mn_data_val_batches(&d, &c) < 1) abort();
        char *json = mn_data_vocab_json(&d);
        mn_text v;
        if (!json || mn_vocab_from_json(json, &v) || v.vocab != d.text.vocab) abort();
        char *s = fuzz_string(data, size);
        int32_t *ids = malloc((size + 1) * sizeof *ids);
        if (!ids) abort();
        mn_text_encode(&v, s, ids, (int64_t)strlen(s));
        free(ids);
        free(s);
        free(json);
    }
    mn_data_free(&d);            /* after a failure too, as train's teardown does */
    return 0;
}
