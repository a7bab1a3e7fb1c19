/* tools/idx.c: the IDX reader (gzip through zlib, which also reads plain
 * files) and the Fashion-MNIST loader built on it. Every header field and
 * the payload length are checked before anything is returned, and the
 * declared size against what the file can hold before anything is inflated. */
#include "idx.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

static mn_status fail(const char *path, const char *what)
{
    return mn_set_error(MN_ERR_FORMAT, "idx %s: %s", path, what);
}

static bool read_full(gzFile f, void *buf, size_t n)
{
    unsigned char *p = buf;
    while (n) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int r = gzread(f, p, chunk);
        if (r <= 0) return false;
        p += r; n -= (size_t)r;
    }
    return true;
}

/* What the file can hold, known before inflating anything: a plain file
 * exactly its size; a gzip file at most 1032 times its size (deflate's best
 * ratio), and its trailer states the inflated length mod 2^32 (ISIZE). */
typedef struct { uint64_t most; bool gz; uint32_t isize; } idx_room;

static mn_status capacity(const char *path, idx_room *r)
{
    struct stat st;
    if (stat(path, &st) != 0) return mn_set_error(MN_ERR_IO, "idx %s: %s", path, strerror(errno));
    FILE *f = S_ISREG(st.st_mode) ? fopen(path, "rb") : NULL;                /* a FIFO would block fopen */
    if (!f) return mn_set_error(MN_ERR_IO, "idx %s: %s", path, S_ISREG(st.st_mode) ? strerror(errno) : "not a regular file");
    unsigned char m[2] = { 0 }, t[4] = { 0 };
    bool ok = fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode);
    uint64_t size = ok ? (uint64_t)st.st_size : 0;
    r->gz = ok && fread(m, 1, 2, f) == 2 && m[0] == 0x1f && m[1] == 0x8b;
    if (r->gz) ok = size >= 18 && fseeko(f, -4, SEEK_END) == 0 && fread(t, 1, 4, f) == 4;
    fclose(f);
    if (!ok) return mn_set_error(MN_ERR_IO, "idx %s: not a regular file (or a gzip file without its trailer)", path);
    r->isize = (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24;
    r->most = r->gz ? size * 1032 : size;
    return MN_OK;
}

/* The header's promise (magic, dims, data) against what the file holds. */
static mn_status check_room(const char *path, const idx_room *r, int ndim, int64_t total)
{
    uint64_t want = 4 + 4 * (uint64_t)ndim + (uint64_t)total, held = r->gz ? r->isize : r->most;
    if (want > r->most)
        return mn_set_error(MN_ERR_FORMAT, "idx %s: payload shorter than the header says: it declares %lld data bytes, "
                            "the file can hold at most %llu", path, (long long)total, (unsigned long long)r->most);
    if ((r->gz ? (uint32_t)want : want) == held) return MN_OK;
    return mn_set_error(MN_ERR_FORMAT, "idx %s: %s: the header declares %lld data bytes, the file holds %llu bytes in all%s", path,
                        (r->gz ? (uint32_t)want : want) > held ? "payload shorter than the header says" : "trailing bytes after the payload",
                        (long long)total, (unsigned long long)held, r->gz ? " (gzip trailer, mod 2^32)" : "");
}

mn_status mn_idx_read(const char *path, mn_idx *out)
{
    memset(out, 0, sizeof *out);
    idx_room room = { 0 };
    mn_status cs = capacity(path, &room);
    if (cs) return cs;
    gzFile f = gzopen(path, "rb");
    if (!f) return mn_set_error(MN_ERR_IO, "idx %s: %s", path, strerror(errno ? errno : ENOENT));
    unsigned char h[4];
    mn_status s = MN_OK;
    if (!read_full(f, h, 4)) s = fail(path, "file too short for the magic number");
    else if (h[0] || h[1] || h[2] != 0x08 || h[3] < 1 || h[3] > 4) s = fail(path, "bad magic (want 0x0000080N, unsigned bytes, 1 to 4 dims)");
    int64_t total = 1;
    for (int i = 0; !s && i < h[3]; i++) {
        unsigned char d[4];
        if (!read_full(f, d, 4)) { s = fail(path, "truncated header"); break; }
        int64_t v = ((int64_t)d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3];
        if (v <= 0 || v > (1 << 28)) { s = fail(path, "dimension out of range"); break; }
        out->dims[out->ndim++] = v;
        total *= v;
        if (total > (1ll << 32)) s = fail(path, "payload too large");
    }
    if (!s) s = check_room(path, &room, out->ndim, total);
    if (!s && !(out->data = malloc((size_t)total))) s = mn_set_error(MN_ERR_NOMEM, "idx %s: out of memory for %lld bytes", path, (long long)total);
    if (!s && !read_full(f, out->data, (size_t)total)) s = fail(path, "payload shorter than the header says");
    unsigned char extra;
    if (!s && gzread(f, &extra, 1) != 0) s = fail(path, "trailing bytes after the payload");
    gzclose(f);
    if (s) mn_idx_free(out);
    return s;
}

void mn_idx_free(mn_idx *x)
{
    free(x->data);
    memset(x, 0, sizeof *x);
}

mn_status mn_fmnist_load(const char *dir, const char *split, int64_t limit, mn_fmnist *out)
{
    char ip[1024], lp[1024];
    mn_idx im, lb;
    memset(out, 0, sizeof *out);
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, split);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    mn_status s = mn_idx_read(ip, &im);
    if (s) return s;
    if ((s = mn_idx_read(lp, &lb))) { mn_idx_free(&im); return s; }
    if (im.ndim != 3 || im.dims[1] != 28 || im.dims[2] != 28) s = fail(ip, "expected [n, 28, 28] images");
    else if (lb.ndim != 1 || lb.dims[0] != im.dims[0]) s = fail(lp, "label count differs from image count");
    int64_t n = im.dims[0];
    if (limit > 0 && limit < n) n = limit;
    if (!s) {
        out->images = mn_tensor_new(MN_F32, MN_SHAPE(n, 784));
        out->labels = mn_tensor_new(MN_I32, MN_SHAPE(n));
        if (!out->images || !out->labels) s = MN_ERR_NOMEM;
    }
    for (int64_t i = 0; !s && i < n * 784; i++) mn_f32(out->images)[i] = im.data[i] / 255.0f;
    for (int64_t i = 0; !s && i < n; i++) {
        if (lb.data[i] > 9) { s = fail(lp, "label outside 0..9"); break; }
        mn_i32(out->labels)[i] = lb.data[i];
    }
    out->n = n;
    mn_idx_free(&im); mn_idx_free(&lb);
    if (s) mn_fmnist_free(out);
    return s;
}

void mn_fmnist_free(mn_fmnist *d)
{
    mn_tensor_free(d->images);
    mn_tensor_free(d->labels);
    memset(d, 0, sizeof *d);
}
