/* tests/fuzz/fuzz_config.c: the --config JSON reader (tools/config.c) as
 * `mnemo train --config FILE` uses it: the model's defaults, the file's
 * keys over them, the range check. A config that passes the check is
 * written back to JSON (the copy a checkpoint stores): every key of the
 * file must be there with the value the file gave (a float as a float),
 * and reading that copy again must give the same JSON. */
#include "fuzz.h"
#include "train.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static bool same_value(json_t *given, json_t *kept)
{
    if (json_is_string(given)) return json_is_string(kept) && !strcmp(json_string_value(given), json_string_value(kept));
    if (json_is_integer(given) && json_is_integer(kept)) return json_integer_value(given) == json_integer_value(kept);
    return json_is_number(kept) && (float)json_number_value(given) == (float)json_number_value(kept);
}

/* Every key of the accepted file holds the value the file gave. */
static void check_kept(const char *text, const char *json)
{
    json_t *in = json_loads(text, 0, NULL), *out = json_loads(json, 0, NULL);
    const char *k;
    json_t *v;
    if (!in || !out) abort();
    json_object_foreach(in, k, v)
        if (!same_value(v, json_object_get(out, k))) abort();
    json_decref(in);
    json_decref(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_string(data, size);
    mn_train_cfg c, back;
    if (mn_cfg_defaults(&c, "lstm")) abort();
    if (!mn_cfg_load_json(&c, text, "fuzz.json") && !mn_cfg_check(&c)) {
        char *json = mn_cfg_to_json(&c);
        if (!json) abort();
        check_kept(text, json);
        if (mn_cfg_defaults(&back, c.model) || mn_cfg_load_json(&back, json, "roundtrip")) abort();
        char *again = mn_cfg_to_json(&back);
        if (!again || strcmp(json, again)) abort();
        free(again);
        free(json);
    }
    free(text);
    return 0;
}
