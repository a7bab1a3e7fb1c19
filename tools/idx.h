/* tools/idx.h: readers for the data sets the mnemo command trains on.
 * IDX (MNIST / Fashion-MNIST), gzip'd or raw, fully validated. */
#ifndef MN_TOOLS_IDX_H
#define MN_TOOLS_IDX_H

#include "mnemo.h"

typedef struct {
    int ndim;
    int64_t dims[4];
    uint8_t *data;     /* dims[0] x ... x dims[ndim-1] bytes */
} mn_idx;

/* Reads an IDX file of unsigned bytes (type 0x08), gzip'd or not. Rejects
 * a bad magic, dims, a short or over-long payload with MN_ERR_FORMAT. */
mn_status mn_idx_read(const char *path, mn_idx *out);
void      mn_idx_free(mn_idx *x);

/* Fashion-MNIST split "train" or "t10k" from dir: images [n, 784] scaled
 * to [0, 1], labels i32 [n]; limit > 0 keeps the first `limit` examples. */
typedef struct { int64_t n; mn_tensor *images, *labels; } mn_fmnist;
#define MN_FMNIST_DIR "/usr/share/datasets/fashion-mnist"
mn_status mn_fmnist_load(const char *dir, const char *split, int64_t limit, mn_fmnist *out);
void      mn_fmnist_free(mn_fmnist *d);

#endif
