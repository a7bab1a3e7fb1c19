/* onnx/tensor.c: ONNX TensorProto <-> mnemo tensors, and node attributes
 * by name. float becomes f32, and so do double, float16 and bfloat16
 * tensors (initializers, Constants, test data: converted, docs/onnx.md);
 * int32, int64, bool and the narrow integers (uint8, int8, uint16, int16,
 * uint32, uint64) become i32 (a value outside the i32 range, or outside
 * its narrow type's, is an error, never a silent wrap, except the
 * +-2^62.. "to the end" sentinels of Slice, which saturate). Every length
 * a file declares is checked against the bytes present before copying. */
#include "internal.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool mn__ox_elem_narrow(int elem)
{
    return elem == OX_UINT8 || elem == OX_INT8 || elem == OX_UINT16 || elem == OX_INT16 || elem == OX_UINT32 || elem == OX_UINT64;
}

bool mn__ox_elem_supported(int elem)
{
    return elem == OX_FLOAT || elem == OX_INT32 || elem == OX_INT64 || elem == OX_BOOL || mn__ox_elem_narrow(elem);
}

static bool converted_to_f32(int elem) { return elem == OX_FLOAT16 || elem == OX_DOUBLE || elem == OX_BFLOAT16; }

int mn__ox_stored_elem(int elem) { return converted_to_f32(elem) ? OX_FLOAT : elem; }

const char *mn__ox_elem_name(int e)
{
    static const char *names[] = { "undefined", "float", "uint8", "int8", "uint16", "int16", "int32", "int64",
        "string", "bool", "float16", "double", "uint32", "uint64", "complex64", "complex128", "bfloat16" };
    if (e >= 0 && e < (int)(sizeof names / sizeof names[0])) return names[e];
    return "unknown";
}

static size_t elem_bytes(int e)
{
    if (e == OX_FLOAT || e == OX_INT32 || e == OX_UINT32) return 4;
    if (e == OX_INT64 || e == OX_DOUBLE || e == OX_UINT64) return 8;
    if (e == OX_FLOAT16 || e == OX_BFLOAT16 || e == OX_UINT16 || e == OX_INT16) return 2;
    return 1;    /* bool, uint8, int8 */
}

/* Raw little-endian integer of a narrow type (uint64 as its bits). */
static int64_t narrow_raw(const uint8_t *p, int elem)
{
    if (elem == OX_UINT8) return p[0];
    if (elem == OX_INT8) return (int8_t)p[0];
    if (elem == OX_UINT16 || elem == OX_INT16) {
        uint16_t u = (uint16_t)(p[0] | p[1] << 8);
        return elem == OX_INT16 ? (int64_t)(int16_t)u : (int64_t)u;
    }
    if (elem == OX_UINT32) {
        uint32_t u;
        memcpy(&u, p, 4);
        return u;
    }
    uint64_t u;
    memcpy(&u, p, 8);
    return u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
}

/* Shape from dims; false with a message if out of mnemo's range. */
static bool tensor_shape(const Onnx__TensorProto *t, mn_shape *s, char *msg, size_t msglen)
{
    if (t->n_dims > MN_MAX_DIMS) {
        snprintf(msg, msglen, "tensor \"%s\" has %zu dims (at most %d)", t->name ? t->name : "", t->n_dims, MN_MAX_DIMS);
        return false;
    }
    s->ndim = (int)t->n_dims;
    int64_t numel = 1;
    for (size_t i = 0; i < t->n_dims; i++) {
        if (t->dims[i] < 0 || t->dims[i] > ((int64_t)1 << 31)) {
            snprintf(msg, msglen, "tensor \"%s\": dim %zu is %lld", t->name ? t->name : "", i, (long long)t->dims[i]);
            return false;
        }
        s->d[i] = t->dims[i];
        numel *= t->dims[i] ? t->dims[i] : 1;
        if (numel > ((int64_t)1 << 31)) {
            snprintf(msg, msglen, "tensor \"%s\" has more than 2^31 elements", t->name ? t->name : "");
            return false;
        }
    }
    return true;
}

/* IEEE half bits -> float (exact: every half is a float). */
static float half_to_float(uint16_t h)
{
    int sign = h >> 15, ex = (h >> 10) & 31, man = h & 1023;
    float v = ex == 0 ? ldexpf((float)man, -24) : ex == 31 ? (man ? NAN : INFINITY) : ldexpf((float)(man | 1024), ex - 25);
    return sign ? -v : v;
}

static float bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float wide_to_float(int elem, uint64_t bits)
{
    if (elem == OX_FLOAT16) return half_to_float((uint16_t)bits);
    if (elem == OX_BFLOAT16) return bf16_to_float((uint16_t)bits);
    double d;
    memcpy(&d, &bits, 8);
    return (float)d;
}

static bool put_int(mn_tensor *out, int64_t i, int64_t v, char *msg, size_t msglen)
{
    const int64_t sentinel = (int64_t)1 << 62;     /* INT64_MAX/MIN as "to the end" (Slice, PyTorch's exports) */
    if (v >= sentinel) v = INT32_MAX;
    if (v <= -sentinel) v = INT32_MIN;
    if (v < INT32_MIN || v > INT32_MAX) {
        snprintf(msg, msglen, "int64 value %lld does not fit mnemo's i32", (long long)v);
        return false;
    }
    mn_i32(out)[i] = (int32_t)v;
    return true;
}

/* The values a narrow type holds, as far as i32 reaches (uint32, uint64: [0, 2^31 - 1]). */
static void narrow_range(int elem, int64_t *lo, int64_t *hi)
{
    *lo = elem == OX_INT8 ? INT8_MIN : elem == OX_INT16 ? INT16_MIN : 0;
    *hi = elem == OX_UINT8 ? UINT8_MAX : elem == OX_INT8 ? INT8_MAX : elem == OX_UINT16 ? UINT16_MAX : elem == OX_INT16 ? INT16_MAX : INT32_MAX;
}

/* Element i of tensor t, a value of the narrow type elem: in that type's
 * range and exact in i32, or an error naming the tensor (int32_data holds
 * 8- and 16-bit values widened, so a file can declare uint8 and hold 300;
 * raw data holds each in its own width and is in range by construction). */
static bool put_narrow(const Onnx__TensorProto *t, int elem, mn_tensor *out, int64_t i, int64_t v, char *msg, size_t msglen)
{
    int64_t lo, hi;
    narrow_range(elem, &lo, &hi);
    if (v >= lo && v <= hi) {
        mn_i32(out)[i] = (int32_t)v;
        return true;
    }
    const char *name = t->name ? t->name : "";
    if (hi == INT32_MAX)
        snprintf(msg, msglen, "tensor \"%s\": %s element %lld is %lld, which does not fit mnemo's i32", name, mn__ox_elem_name(elem), (long long)i,
                 (long long)v);
    else
        snprintf(msg, msglen, "tensor \"%s\": element %lld is %lld, outside %s's range [%lld, %lld]", name, (long long)i, (long long)v,
                 mn__ox_elem_name(elem), (long long)lo, (long long)hi);
    return false;
}

/* Element i of raw little-endian data of type elem. */
static bool from_raw(const Onnx__TensorProto *t, const uint8_t *p, int elem, mn_tensor *out, int64_t i, char *msg, size_t msglen)
{
    if (elem == OX_FLOAT) {
        memcpy(&mn_f32(out)[i], p, 4);
        return true;
    }
    if (elem == OX_INT32) {
        memcpy(&mn_i32(out)[i], p, 4);
        return true;
    }
    if (elem == OX_BOOL) {
        mn_i32(out)[i] = p[0] != 0;
        return true;
    }
    if (converted_to_f32(elem)) {
        uint64_t bits = 0;
        memcpy(&bits, p, elem_bytes(elem));
        mn_f32(out)[i] = wide_to_float(elem, bits);
        return true;
    }
    if (mn__ox_elem_narrow(elem)) return put_narrow(t, elem, out, i, narrow_raw(p, elem), msg, msglen);
    int64_t v;
    memcpy(&v, p, 8);
    return put_int(out, i, v, msg, msglen);
}

static bool fill_typed(const Onnx__TensorProto *t, int elem, mn_tensor *out, int64_t n, char *msg, size_t msglen)
{
    bool u64 = elem == OX_UINT32 || elem == OX_UINT64;      /* uint32, uint64: uint64_data; the other narrow types: int32_data */
    size_t have = elem == OX_FLOAT ? t->n_float_data : elem == OX_INT64 ? t->n_int64_data : elem == OX_DOUBLE ? t->n_double_data
                : u64 ? t->n_uint64_data : t->n_int32_data;
    if ((int64_t)have != n) {
        snprintf(msg, msglen, "tensor \"%s\" holds %zu values for %lld elements", t->name ? t->name : "", have, (long long)n);
        return false;
    }
    for (int64_t i = 0; i < n; i++) {
        if (elem == OX_FLOAT)
            mn_f32(out)[i] = t->float_data[i];
        else if (elem == OX_DOUBLE)
            mn_f32(out)[i] = (float)t->double_data[i];
        else if (converted_to_f32(elem))                 /* float16, bfloat16: bits in int32_data */
            mn_f32(out)[i] = wide_to_float(elem, (uint64_t)(uint16_t)t->int32_data[i]);
        else if (elem == OX_INT64) {
            if (!put_int(out, i, t->int64_data[i], msg, msglen)) return false;
        } else if (u64) {
            if (!put_narrow(t, elem, out, i, t->uint64_data[i] > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)t->uint64_data[i], msg, msglen))
                return false;
        } else if (mn__ox_elem_narrow(elem)) {
            if (!put_narrow(t, elem, out, i, t->int32_data[i], msg, msglen)) return false;
        } else
            mn_i32(out)[i] = elem == OX_BOOL ? t->int32_data[i] != 0 : t->int32_data[i];
    }
    return true;
}

mn_tensor *mn__ox_tensor(const Onnx__TensorProto *t, char *msg, size_t msglen)
{
    int elem = t->has_data_type ? t->data_type : 0;
    const char *name = t->name ? t->name : "";
    if (!mn__ox_elem_supported(elem) && !converted_to_f32(elem)) {
        snprintf(msg, msglen, "tensor \"%s\": dtype %s is not supported (float, int32, int64, bool, 8-, 16- and 32-bit integers; double, float16 and bfloat16 are converted to float)", name, mn__ox_elem_name(elem));
        return NULL;
    }
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL) {
        snprintf(msg, msglen, "tensor \"%s\": external data is not supported", name);
        return NULL;
    }
    mn_shape s;
    if (!tensor_shape(t, &s, msg, msglen)) return NULL;
    mn_tensor *out = mn_tensor_new(elem == OX_FLOAT || converted_to_f32(elem) ? MN_F32 : MN_I32, s);
    if (!out) {
        snprintf(msg, msglen, "tensor \"%s\": out of memory", name);
        return NULL;
    }
    int64_t n = mn_shape_numel(s);
    bool ok = true;
    if (t->has_raw_data) {
        size_t eb = elem_bytes(elem);
        if (t->raw_data.len != (size_t)n * eb) {
            snprintf(msg, msglen, "tensor \"%s\": raw data has %zu bytes for %lld elements of %s", name, t->raw_data.len,
                     (long long)n, mn__ox_elem_name(elem));
            ok = false;
        }
        for (int64_t i = 0; ok && i < n; i++) ok = from_raw(t, t->raw_data.data + (size_t)i * eb, elem, out, i, msg, msglen);
    } else {
        ok = fill_typed(t, elem, out, n, msg, msglen);
    }
    if (!ok) {
        mn_tensor_free(out);
        return NULL;
    }
    return out;
}

const Onnx__AttributeProto *mn__ox_attr(const Onnx__NodeProto *n, const char *name)
{
    for (size_t i = 0; i < n->n_attribute; i++)
        if (n->attribute[i]->name && !strcmp(n->attribute[i]->name, name)) return n->attribute[i];
    return NULL;
}

int64_t mn__ox_attr_int(const Onnx__NodeProto *n, const char *name, int64_t def)
{
    const Onnx__AttributeProto *a = mn__ox_attr(n, name);
    return a && a->has_i ? a->i : def;
}

float mn__ox_attr_float(const Onnx__NodeProto *n, const char *name, float def)
{
    const Onnx__AttributeProto *a = mn__ox_attr(n, name);
    return a && a->has_f ? a->f : def;
}

const int64_t *mn__ox_attr_ints(const Onnx__NodeProto *n, const char *name, size_t *len)
{
    const Onnx__AttributeProto *a = mn__ox_attr(n, name);
    *len = a ? a->n_ints : 0;
    return a ? a->ints : NULL;
}

const char *mn__ox_attr_str(const Onnx__NodeProto *n, const char *name, char *buf, size_t len)
{
    const Onnx__AttributeProto *a = mn__ox_attr(n, name);
    buf[0] = 0;
    if (a && a->has_s && len > 0) {
        size_t k = a->s.len < len - 1 ? a->s.len : len - 1;
        memcpy(buf, a->s.data, k);
        buf[k] = 0;
    }
    return buf;
}

mn_tensor *mn_onnx_load_tensor(const char *path, char *name, size_t namelen)
{
    FILE *f = mn_fopen_regular(path, "onnx tensor");
    if (!f) {
        return NULL;
    }
    size_t cap = 1 << 16, len = 0;
    uint8_t *buf = malloc(cap);
    size_t r;
    while (buf && (r = fread(buf + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) {
            uint8_t *nb = cap < ((size_t)1 << 31) ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                free(buf);
                buf = NULL;
            }
            buf = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (!buf) {
        mn_set_error(MN_ERR_NOMEM, "%s: out of memory", path);
        return NULL;
    }
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, len, buf);
    free(buf);
    if (!t) {
        mn_set_error(MN_ERR_FORMAT, "%s: not a TensorProto", path);
        return NULL;
    }
    char msg[256];
    mn_tensor *out = mn__ox_tensor(t, msg, sizeof msg);
    if (!out) mn_set_error(MN_ERR_UNSUPPORTED, "%s: %s", path, msg);
    if (out && name && namelen) snprintf(name, namelen, "%s", t->name ? t->name : "");
    onnx__tensor_proto__free_unpacked(t, NULL);
    return out;
}
