/* tools/text.c: character-level corpora (fortunes-min, bible-kjv text):
 * read whole regular files (no devices, pipes or directories; a NUL byte is
 * refused), drop fortune separators, build the byte vocabulary in byte
 * order (stable across runs), encode; bytes outside a given vocabulary map
 * to its unknown symbol (the space) and are counted. */
#include "text.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Refuses what is not a regular file (a directory, a device such as
 * /dev/zero, a pipe) before reading: reading stops at the size seen. */
static mn_status open_regular(const char *path, FILE **out, size_t *size)
{
    struct stat st;
    if (stat(path, &st) != 0) return mn_set_error(MN_ERR_IO, "text %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))                                /* checked first: opening a FIFO would wait for a writer */
        return mn_set_error(MN_ERR_IO, "text %s: is %s, not a regular file", path,
                            S_ISDIR(st.st_mode) ? "a directory" : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a pipe or socket");
    FILE *f = fopen(path, "rb");
    if (!f) return mn_set_error(MN_ERR_IO, "text %s: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return mn_set_error(MN_ERR_IO, "text %s: changed while being opened", path);
    }
    *out = f;
    *size = (size_t)st.st_size;
    return MN_OK;
}

/* Appends the file; fortune separator lines ("%") become empty lines. A
 * NUL byte (a binary file) is refused with its offset. */
static mn_status append_file(const char *path, char **buf, size_t *len, size_t *cap)
{
    FILE *f = NULL;
    size_t size = 0;
    mn_status s = open_regular(path, &f, &size);
    if (s) return s;
    if (*len + size + 2 > *cap) {
        size_t c = *len + size + 2;
        char *b = realloc(*buf, c);
        if (!b) { fclose(f); return mn_set_error(MN_ERR_NOMEM, "text %s: out of memory for %zu bytes", path, size); }
        *buf = b; *cap = c;
    }
    char *at = *buf + *len;
    size_t got = fread(at, 1, size, f);
    fclose(f);
    const char *nul = memchr(at, 0, got);
    if (nul) return mn_set_error(MN_ERR_FORMAT, "text %s: NUL byte at offset %zu (a binary file?)", path, (size_t)(nul - at));
    size_t w = 0;
    for (size_t r = 0; r < got;) {                      /* drop the '%' of separator lines in place */
        size_t e = r;
        while (e < got && at[e] != '\n') e++;
        bool sep = e - r == 1 && at[r] == '%';
        if (!sep) { memmove(at + w, at + r, e - r); w += e - r; }
        if (e < got || sep) at[w++] = '\n';
        r = e + 1;
    }
    *len += w;
    return MN_OK;
}

mn_status mn_text_load(const char *const *paths, mn_text *t)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    memset(t, 0, sizeof *t);
    for (int i = 0; paths[i]; i++) {
        mn_status s = append_file(paths[i], &buf, &len, &cap);
        if (s) { free(buf); return s; }
    }
    if (!len) { free(buf); return mn_set_error(MN_ERR_FORMAT, "text %s: empty (no characters)", paths[0] ? paths[0] : "(no files)"); }
    mn_status s = mn_text_from_bytes(buf, len, t);
    free(buf);
    return s;
}

mn_status mn_text_from_bytes(const char *buf, size_t len, mn_text *t)
{
    memset(t, 0, sizeof *t);
    if (!len) return mn_set_error(MN_ERR_FORMAT, "text: empty");
    bool seen[256] = { false };
    for (size_t i = 0; i < len; i++) seen[(unsigned char)buf[i]] = true;
    for (int c = 0; c < 256; c++) {
        t->index[c] = -1;
        if (seen[c]) { t->index[c] = (int16_t)t->vocab; t->chars[t->vocab++] = (unsigned char)c; }
    }
    if (!(t->ids = malloc(len * sizeof *t->ids))) return mn_set_error(MN_ERR_NOMEM, "text: out of memory");
    for (size_t i = 0; i < len; i++) t->ids[i] = t->index[(unsigned char)buf[i]];
    t->n = (int64_t)len;
    return MN_OK;
}

int mn_text_unknown_id(const mn_text *v)
{
    return v->index[' '] >= 0 ? v->index[' '] : 0;
}

int64_t mn_text_encode(const mn_text *v, const char *s, int32_t *out, int64_t n)
{
    int64_t unknown = 0;
    int unk = mn_text_unknown_id(v);
    for (int64_t i = 0; i < n; i++) {
        int id = v->index[(unsigned char)s[i]];
        unknown += id < 0;
        out[i] = id < 0 ? unk : id;
    }
    return unknown;
}

int64_t mn_text_reencode(mn_text *t, const mn_text *vocab)
{
    int64_t unknown = 0;
    int unk = mn_text_unknown_id(vocab);
    for (int64_t i = 0; i < t->n; i++) {
        int id = vocab->index[t->chars[t->ids[i]]];
        unknown += id < 0;
        t->ids[i] = id < 0 ? unk : id;
    }
    t->vocab = vocab->vocab;
    memcpy(t->chars, vocab->chars, sizeof t->chars);
    memcpy(t->index, vocab->index, sizeof t->index);
    return unknown;
}

void mn_text_free(mn_text *t)
{
    free(t->ids);
    memset(t, 0, sizeof *t);
}

/* `bible gen1:1-rev22:21` prints book/chapter headings ("Genesis 1"),
 * verses starting "  12 text" and wrapped continuation lines: keep one
 * verse per line without its number. */
mn_status mn_text_kjv(mn_text *t)
{
    FILE *p = popen("bible gen1:1-rev22:21 2>/dev/null", "r");
    if (!p) return mn_set_error(MN_ERR_IO, "kjv: cannot run `bible` (package bible-kjv)");
    size_t len = 0, cap = 1 << 22;
    char *buf = malloc(cap), line[4096];
    if (!buf) { pclose(p); return mn_set_error(MN_ERR_NOMEM, "kjv: out of memory"); }
    while (fgets(line, sizeof line, p)) {
        line[strcspn(line, "\n")] = 0;
        char *l = line, *e;
        if (!*l) continue;
        bool verse = *l == ' ' && (strtol(l, &e, 10), e != l && *e == ' ');
        if (verse) l = e + 1;
        else if (*l != ' ' && (l[strlen(l) - 1] >= '0' && l[strlen(l) - 1] <= '9')) continue;   /* heading */
        size_t n = strlen(l);
        if (len + n + 2 > cap) {
            char *b = realloc(buf, cap *= 2);
            if (!b) { free(buf); pclose(p); return mn_set_error(MN_ERR_NOMEM, "kjv: out of memory"); }
            buf = b;
        }
        if (len) buf[len++] = verse ? '\n' : ' ';
        memcpy(buf + len, l, n);
        len += n;
    }
    int rc = pclose(p);
    if (rc != 0 || len < 1000) { free(buf); return mn_set_error(MN_ERR_IO, "kjv: `bible gen1:1-rev22:21` failed (install bible-kjv)"); }
    buf[len++] = '\n';
    mn_status s = mn_text_from_bytes(buf, len, t);
    free(buf);
    return s;
}
