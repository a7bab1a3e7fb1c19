/* tests/fuzz/fuzz_idx.c: the IDX reader (tools/idx.c) on a file, gzip'd or
 * plain as the input comes. An accepted file must hold exactly the product
 * of its dims in bytes: the target reads every one of them. */
#include "fuzz.h"
#include "idx.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[640];
    fuzz_write(path, sizeof path, "input-idx-ubyte.gz", data, size);
    mn_idx x;
    if (!mn_idx_read(path, &x)) {
        int64_t n = 1;
        volatile unsigned sink = 0;
    (void)sink;
        if (x.ndim < 1 || x.ndim > 4) abort();
        for (int i = 0; i < x.ndim; i++) n *= x.dims[i];
        for (int64_t i = 0; i < n; i++) sink += x.data[i];
        mn_idx_free(&x);
    }
    return 0;
}
