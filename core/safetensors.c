/* core/safetensors.c: parameter store <-> safetensors file. The reader
 * validates the whole file before it touches the store (all or nothing);
 * the writer goes through a temporary file, fsync and rename, so `path`
 * always holds either the old or the new complete checkpoint. */
#include "internal.h"
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u * 1024u * 1024u)
#define ST_STATE_KEY "mnemo.state_tensors"

mn_status mn__params_adopt(mn_params *P, const char *name, mn_tensor *value, bool trainable);

/* ---- writer ---- */

static char *state_list(const mn_params *P)
{
    size_t len = 1;
    for (int i = 0; i < mn_params_count(P); i++)
        if (!mn_params_grad((mn_params *)P, i)) len += strlen(mn_params_name(P, i)) + 1;
    char *s = calloc(1, len);
    if (!s) return NULL;
    for (int i = 0; i < mn_params_count(P); i++)
        if (!mn_params_grad((mn_params *)P, i)) {
            if (*s) strcat(s, ",");
            strcat(s, mn_params_name(P, i));
        }
    return s;
}

static json_t *build_header(const mn_params *P)
{
    json_t *h = json_object(), *meta = json_object();
    char *states = state_list(P);
    int ok = h && meta && states;
    for (int i = 0; ok && i < mn_params_meta_count(P); i++) {
        const char *k, *v;
        mn_params_meta_at(P, i, &k, &v);
        if (strcmp(k, ST_STATE_KEY) != 0) ok = !json_object_set_new(meta, k, json_string(v));
    }
    if (ok && *states) ok = !json_object_set_new(meta, ST_STATE_KEY, json_string(states));
    free(states);
    if (ok && json_object_size(meta)) ok = !json_object_set(h, "__metadata__", meta);
    json_decref(meta);
    uint64_t off = 0;
    for (int i = 0; ok && i < mn_params_count(P); i++) {
        const mn_tensor *t = mn_params_value((mn_params *)P, i);
        json_t *shape = json_array();
        for (int d = 0; shape && d < t->shape.ndim; d++) json_array_append_new(shape, json_integer(t->shape.d[d]));
        uint64_t end = off + mn_tensor_bytes(t);
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", shape,
                              "data_offsets", (json_int_t)off, (json_int_t)end);
        ok = e && !json_object_set_new(h, mn_params_name(P, i), e);
        off = end;
    }
    if (!ok) { json_decref(h); return NULL; }
    return h;
}

static mn_status write_all(int fd, const void *p, size_t n, const char *path)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return mn__error(MN_ERR_IO, "save %s: write failed: %s", path, strerror(errno));
        c += w; n -= (size_t)w;
    }
    return MN_OK;
}

static void fsync_dir(const char *path)
{
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) { fsync(fd); close(fd); }
    free(copy);
}

mn_status mn_params_save(const mn_params *P, const char *path)
{
    if (!P || !path) return mn__error(MN_ERR_MISUSE, "params_save: NULL argument");
    struct stat st;                      /* the rename would replace a device, pipe or link with a file */
    if (lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
        return mn__error(MN_ERR_IO, "save %s: not a regular file; refusing to replace it", path);
    json_t *h = build_header(P);
    char *js = h ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(h);
    if (!js) return mn__error(MN_ERR_NOMEM, "save %s: cannot build header", path);
    size_t n = strlen(js), padded = MN__ALIGN_UP(n, 8);
    char *hdr = malloc(padded + 8);
    char *tmp = malloc(strlen(path) + 32);
    if (!hdr || !tmp) { free(js); free(hdr); free(tmp); return mn__error(MN_ERR_NOMEM, "save: out of memory"); }
    for (int i = 0; i < 8; i++) hdr[i] = (char)(((uint64_t)padded >> (8 * i)) & 0xff);
    memcpy(hdr + 8, js, n);
    memset(hdr + 8 + n, ' ', padded - n);
    free(js);
    sprintf(tmp, "%s.tmp.%ld", path, (long)getpid());
    unlink(tmp);                       /* a leftover (or planted link) of this name: never written through */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
    mn_status s = fd < 0 ? mn__error(MN_ERR_IO, "save %s: cannot create %s: %s", path, tmp, strerror(errno))
                         : write_all(fd, hdr, padded + 8, path);
    for (int i = 0; !s && i < mn_params_count(P); i++) {
        const mn_tensor *t = mn_params_value((mn_params *)P, i);
        s = write_all(fd, t->data, mn_tensor_bytes(t), path);
    }
    if (!s && fsync(fd) != 0) s = mn__error(MN_ERR_IO, "save %s: fsync: %s", path, strerror(errno));
    if (fd >= 0 && close(fd) != 0 && !s) s = mn__error(MN_ERR_IO, "save %s: close: %s", path, strerror(errno));
    if (!s && rename(tmp, path) != 0) s = mn__error(MN_ERR_IO, "save %s: rename: %s", path, strerror(errno));
    if (s && fd >= 0) unlink(tmp);
    if (!s) fsync_dir(path);
    free(hdr); free(tmp);
    return s;
}

/* ---- reader ---- */

typedef struct { const char *name; mn_shape shape; uint64_t b, e; mn_tensor *t; } st_entry;

static const char *const known_dtypes[] = {
    "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
    "I32", "U32", "F32", "F64", "I64", "U64",
};

static mn_status parse_entry(const char *path, const char *name, json_t *v, st_entry *out)
{
    json_t *dt = json_object_get(v, "dtype"), *sh = json_object_get(v, "shape"),
           *off = json_object_get(v, "data_offsets");
    if (!json_is_object(v) || !json_is_string(dt) || !json_is_array(sh) || !json_is_array(off) ||
        json_array_size(off) != 2)
        return mn__error(MN_ERR_FORMAT, "load %s: tensor \"%s\": need dtype, shape and data_offsets [begin, end]", path, name);
    const char *d = json_string_value(dt);
    int known = 0;
    for (size_t i = 0; i < MN__ARRAY_LEN(known_dtypes); i++) known |= strcmp(d, known_dtypes[i]) == 0;
    if (!known) return mn__error(MN_ERR_FORMAT, "load %s: tensor \"%s\": unknown dtype \"%s\"", path, name, d);
    if (strcmp(d, "F32") != 0)
        return mn__error(MN_ERR_UNSUPPORTED, "load %s: tensor \"%s\": dtype %s (the store holds F32 only)", path, name, d);
    if (json_array_size(sh) > MN_MAX_DIMS)
        return mn__error(MN_ERR_FORMAT, "load %s: tensor \"%s\": %zu dims (at most %d)", path, name, json_array_size(sh), MN_MAX_DIMS);
    out->name = name;
    out->shape.ndim = (int)json_array_size(sh);
    uint64_t numel = 1;
    for (int i = 0; i < out->shape.ndim; i++) {
        json_t *x = json_array_get(sh, (size_t)i);
        if (!json_is_integer(x) || json_integer_value(x) < 0 || json_integer_value(x) > (1ll << 40))
            return mn__error(MN_ERR_FORMAT, "load %s: tensor \"%s\": bad dim %d", path, name, i);
        out->shape.d[i] = json_integer_value(x);
        uint64_t d = (uint64_t)out->shape.d[i];
        if (d && numel > (1ull << 40) / d) return mn__error(MN_ERR_FORMAT, "load %s: tensor \"%s\": too large", path, name);
        numel *= d;   /* checked above: at most 2^40 */
        if (numel > (1ull << 40)) return mn__error(MN_ERR_FORMAT, "load %s: tensor \"%s\": too large", path, name);
    }
    json_t *b = json_array_get(off, 0), *e = json_array_get(off, 1);
    if (!json_is_integer(b) || !json_is_integer(e) || json_integer_value(b) < 0 ||
        json_integer_value(e) < json_integer_value(b))
        return mn__error(MN_ERR_FORMAT, "load %s: tensor \"%s\": bad data_offsets", path, name);
    out->b = (uint64_t)json_integer_value(b);
    out->e = (uint64_t)json_integer_value(e);
    if (out->e - out->b != numel * 4)
        return mn__error(MN_ERR_FORMAT, "load %s: tensor \"%s\": %llu bytes for %llu F32 elements",
                         path, name, (unsigned long long)(out->e - out->b), (unsigned long long)numel);
    return MN_OK;
}

static int by_begin(const void *a, const void *b)
{
    const st_entry *x = a, *y = b;
    return x->b < y->b ? -1 : x->b > y->b ? 1 : (x->e > y->e) - (x->e < y->e);
}

static mn_status check_layout(const char *path, st_entry *e, size_t n, uint64_t data_bytes)
{
    st_entry *s = malloc((n ? n : 1) * sizeof *s);
    if (!s) return mn__error(MN_ERR_NOMEM, "load %s: out of memory", path);
    memcpy(s, e, n * sizeof *s);
    qsort(s, n, sizeof *s, by_begin);
    uint64_t at = 0;
    mn_status st = MN_OK;
    for (size_t i = 0; i < n && !st; i++) {
        if (s[i].b != at)
            st = mn__error(MN_ERR_FORMAT, "load %s: tensor \"%s\" begins at %llu, expected %llu (offsets must be contiguous)",
                           path, s[i].name, (unsigned long long)s[i].b, (unsigned long long)at);
        at = s[i].e;
    }
    if (!st && at != data_bytes)
        st = mn__error(MN_ERR_FORMAT, "load %s: tensor data ends at %llu but the file holds %llu data bytes",
                       path, (unsigned long long)at, (unsigned long long)data_bytes);
    free(s);
    return st;
}

static mn_status read_header(FILE *f, const char *path, uint64_t fsize, json_t **out, uint64_t *hlen)
{
    unsigned char lb[8];
    if (fsize < 8 || fread(lb, 1, 8, f) != 8)
        return mn__error(MN_ERR_FORMAT, "load %s: file too short for a safetensors header", path);
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | lb[i];
    if (n < 2 || n > ST_MAX_HEADER || n > fsize - 8)
        return mn__error(MN_ERR_FORMAT, "load %s: header length %llu out of bounds (file %llu bytes)",
                         path, (unsigned long long)n, (unsigned long long)fsize);
    char *buf = malloc(n);
    if (!buf) return mn__error(MN_ERR_NOMEM, "load %s: out of memory", path);
    if (fread(buf, 1, n, f) != n) { free(buf); return mn__error(MN_ERR_IO, "load %s: short read", path); }
    json_error_t err;
    json_t *h = json_loadb(buf, n, JSON_REJECT_DUPLICATES, &err);
    free(buf);
    if (!h) return mn__error(MN_ERR_FORMAT, "load %s: header JSON: %s (line %d, column %d)", path, err.text, err.line, err.column);
    if (!json_is_object(h)) { json_decref(h); return mn__error(MN_ERR_FORMAT, "load %s: header is not a JSON object", path); }
    *out = h; *hlen = n;
    return MN_OK;
}

static mn_status check_against_store(mn_params *P, const char *path, st_entry *e, size_t n)
{
    char a[96], b[96];
    for (size_t i = 0; i < n; i++) {
        mn_tensor *t = mn_params_get(P, e[i].name);
        if (t && !mn_shape_eq(t->shape, e[i].shape))
            return mn__error(MN_ERR_SHAPE, "load %s: tensor \"%s\" has shape %s in the file but %s in the store",
                             path, e[i].name, mn_shape_str(e[i].shape, a, sizeof a), mn_shape_str(t->shape, b, sizeof b));
    }
    return MN_OK;
}

static bool in_list(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *c = strchr(p, ',');
        size_t len = c ? (size_t)(c - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return true;
        p = c ? c + 1 : NULL;
    }
    return false;
}

static mn_status commit(mn_params *P, json_t *meta, st_entry *e, size_t n)
{
    const char *states = json_string_value(json_object_get(meta, ST_STATE_KEY));
    const char *k; json_t *v;
    for (size_t i = 0; i < n; i++) {
        mn_tensor *t = mn_params_get(P, e[i].name);
        if (t) { memcpy(t->data, e[i].t->data, mn_tensor_bytes(t)); continue; }
        mn_status s = mn__params_adopt(P, e[i].name, e[i].t, !in_list(states, e[i].name));
        if (s) return s;
        e[i].t = NULL;
    }
    json_object_foreach(meta, k, v) {
        mn_status s = mn_params_set_meta(P, k, json_string_value(v));
        if (s) return s;
    }
    return MN_OK;
}

/* The header's entries (checked: names, shapes, a layout within the file) and its metadata. */
static mn_status parse_entries(const char *path, json_t *h, uint64_t hlen, uint64_t fsize, st_entry *e, size_t *n, json_t **meta)
{
    const char *k; json_t *v;
    mn_status s = MN_OK;
    json_object_foreach(h, k, v) {
        if (strcmp(k, "__metadata__") == 0) {
            const char *mk; json_t *mv;
            if (!json_is_object(v)) return mn__error(MN_ERR_FORMAT, "load %s: __metadata__ is not an object", path);
            json_object_foreach(v, mk, mv)
                if (!json_is_string(mv)) return mn__error(MN_ERR_FORMAT, "load %s: __metadata__ \"%s\" is not a string", path, mk);
            *meta = v;
            continue;
        }
        if ((s = parse_entry(path, k, v, &e[*n]))) return s;
        (*n)++;
    }
    return check_layout(path, e, *n, fsize - 8 - hlen);
}

/* The entries' tensors, read from the data section. */
static mn_status read_entries(FILE *f, const char *path, uint64_t hlen, st_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!(e[i].t = mn_tensor_new(MN_F32, e[i].shape))) return mn_last_status();
        size_t bytes = mn_tensor_bytes(e[i].t);
        if (fseeko(f, (off_t)(8 + hlen + e[i].b), SEEK_SET) != 0 || fread(e[i].t->data, 1, bytes, f) != bytes)
            return mn__error(MN_ERR_IO, "load %s: cannot read tensor \"%s\"", path, e[i].name);
    }
    return MN_OK;
}

/* The whole file, or (meta_only) its header: checked alike, only the metadata kept. */
static mn_status load(mn_params *P, const char *path, bool meta_only)
{
    if (!P || !path) return mn__error(MN_ERR_MISUSE, "params_load: NULL argument");
    FILE *f = mn_fopen_regular(path, "load");
    if (!f) return mn_last_status();
    struct stat st;
    json_t *h = NULL, *meta = NULL;
    uint64_t hlen = 0;
    st_entry *e = NULL;
    size_t n = 0;
    mn_status s = fstat(fileno(f), &st) != 0 ? mn__error(MN_ERR_IO, "load %s: stat failed", path)
                : read_header(f, path, (uint64_t)st.st_size, &h, &hlen);
    if (!s && !(e = calloc(json_object_size(h) + 1, sizeof *e))) s = mn__error(MN_ERR_NOMEM, "load: out of memory");
    if (!s) s = parse_entries(path, h, hlen, (uint64_t)st.st_size, e, &n, &meta);
    if (!s && !meta_only) s = read_entries(f, path, hlen, e, n);
    if (!s && !meta_only) s = check_against_store(P, path, e, n);
    if (!s) s = commit(P, meta, e, meta_only ? 0 : n);
    for (size_t i = 0; e && i < n; i++) mn_tensor_free(e[i].t);
    free(e);
    json_decref(h);
    fclose(f);
    return s;
}

mn_status mn_params_load(mn_params *P, const char *path) { return load(P, path, false); }

mn_status mn_params_load_meta(mn_params *P, const char *path) { return load(P, path, true); }
