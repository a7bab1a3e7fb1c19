/* core/tensor.c: dtypes, shapes (up to MN_MAX_DIMS, row-major), NumPy
 * broadcasting and heap tensors. Invariant: a tensor made here owns one
 * 64-byte aligned, zero-filled buffer of exactly numel x dtype size bytes. */
#include "internal.h"
#include <stdlib.h>
#include <string.h>

const char *mn_dtype_name(mn_dtype t)
{
    switch (t) {
    case MN_F32: return "f32";
    case MN_I32: return "i32";
    }
    return "?";
}

size_t mn_dtype_size(mn_dtype t) { (void)t; return 4; }

/* Element count; INT64_MAX when the product does not fit (never wraps). */
int64_t mn_shape_numel(mn_shape s)
{
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++)
        if (__builtin_mul_overflow(n, s.d[i], &n)) return INT64_MAX;
    return n;
}

/* numel x esize in bytes, false when it does not fit a size_t or int64 */
static bool shape_bytes(mn_shape s, size_t esize, size_t *bytes)
{
    int64_t n = 1;
    for (int i = 0; i < s.ndim; i++)
        if (__builtin_mul_overflow(n, s.d[i], &n)) return false;
    return !__builtin_mul_overflow((uint64_t)n, (uint64_t)esize, bytes) && *bytes <= (size_t)INT64_MAX;
}

bool mn_shape_eq(mn_shape a, mn_shape b)
{
    if (a.ndim != b.ndim) return false;
    for (int i = 0; i < a.ndim; i++)
        if (a.d[i] != b.d[i]) return false;
    return true;
}

char *mn_shape_str(mn_shape s, char *buf, size_t n)
{
    size_t k = 0;
    if (n == 0) return buf;
    k += (size_t)snprintf(buf + k, n - k, "[");
    for (int i = 0; i < s.ndim && i < MN_MAX_DIMS && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ",%lld" : "%lld", (long long)s.d[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

mn_status mn_shape_broadcast(mn_shape a, mn_shape b, mn_shape *out)
{
    mn_shape r = { .ndim = a.ndim > b.ndim ? a.ndim : b.ndim };
    for (int i = 0; i < r.ndim; i++) {
        int ia = a.ndim - r.ndim + i, ib = b.ndim - r.ndim + i;
        int64_t da = ia >= 0 ? a.d[ia] : 1, db = ib >= 0 ? b.d[ib] : 1;
        if (da != db && da != 1 && db != 1) return MN_ERR_SHAPE;
        r.d[i] = da == 1 ? db : da;
    }
    *out = r;
    return MN_OK;
}

mn_tensor *mn_tensor_new(mn_dtype dtype, mn_shape shape)
{
    if (shape.ndim < 0 || shape.ndim > MN_MAX_DIMS) {
        mn__error(MN_ERR_INVALID, "tensor: %d dims (at most %d)", shape.ndim, MN_MAX_DIMS);
        return NULL;
    }
    for (int i = 0; i < shape.ndim; i++)
        if (shape.d[i] < 0) {
            mn__error(MN_ERR_INVALID, "tensor: negative dim %lld", (long long)shape.d[i]);
            return NULL;
        }
    size_t bytes;
    if (!shape_bytes(shape, mn_dtype_size(dtype), &bytes)) {
        char b[160];
        mn__error(MN_ERR_INVALID, "tensor: shape %s has more bytes than memory can address", mn_shape_str(shape, b, sizeof b));
        return NULL;
    }
    mn_tensor *t = calloc(1, sizeof *t);
    void *data = t ? mn__aligned_alloc(bytes) : NULL;
    if (!t || !data) {
        free(t); free(data);
        mn__error(MN_ERR_NOMEM, "tensor: cannot allocate %zu bytes", bytes);
        return NULL;
    }
    memset(data, 0, bytes);
    t->dtype = dtype; t->shape = shape; t->data = data;
    return t;
}

void mn_tensor_free(mn_tensor *t)
{
    if (!t) return;
    free(t->data);
    free(t);
}

int64_t mn_tensor_numel(const mn_tensor *t) { return t ? mn_shape_numel(t->shape) : 0; }
size_t mn_tensor_bytes(const mn_tensor *t)
{
    return t ? (size_t)mn_tensor_numel(t) * mn_dtype_size(t->dtype) : 0;
}
