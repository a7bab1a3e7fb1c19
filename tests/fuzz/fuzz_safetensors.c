/* tests/fuzz/fuzz_safetensors.c: the safetensors loader. The input is a
 * file handed to mn_params_load, first into an empty store, then into a
 * store that already holds one of its tensors (the shape-match and
 * all-or-nothing paths); a loaded store is saved and loaded again. */
#include "fuzz.h"
#include "mnemo.h"
#include <stdlib.h>
#include <string.h>

/* Loads, then saves and reloads what was accepted: the writer must accept
 * every store the reader produces, and the reread store must match it. */
static void roundtrip(mn_params *P)
{
    char path[640];
    fuzz_write(path, sizeof path, "saved.safetensors", "", 0);
    if (mn_params_save(P, path)) abort();
    mn_params *Q = mn_params_new();
    if (mn_params_load(Q, path) || mn_params_count(Q) != mn_params_count(P)) abort();
    mn_params_free(Q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[640];
    fuzz_write(path, sizeof path, "input.safetensors", data, size);
    mn_params *P = mn_params_new();
    if (!mn_params_load(P, path)) {
        roundtrip(P);
        mn_params *R = mn_params_new();
        if (mn_params_count(P) > 0) {
            mn_tensor *t = mn_params_value(P, 0);
            mn_params_create_state(R, mn_params_name(P, 0), t->shape);
        }
        mn_params_load(R, path);
        mn_params_free(R);
    }
    mn_params_free(P);
    return 0;
}
