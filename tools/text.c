/* tools/text.c: character-level corpora (fortunes-min, bible-kjv text):
 * read whole files, drop fortune separators, build the byte vocabulary in
 * byte order (stable across runs), encode. */
#include "text.h"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static mn_status append_file(const char *path, char **buf, size_t *len, size_t *cap)
{
    FILE *f = fopen(path, "rb");
    if (!f) return mn_set_error(MN_ERR_IO, "text %s: %s", path, strerror(errno));
    char line[4096];
    while (fgets(line, sizeof line, f)) {
        const char *l = line;
        if (!strcmp(line, "%\n") || !strcmp(line, "%")) l = "\n";
        size_t n = strlen(l);
        if (*len + n + 1 > *cap) {
            size_t c = (*cap ? *cap * 2 : 65536) + n;
            char *b = realloc(*buf, c);
            if (!b) { fclose(f); return mn_set_error(MN_ERR_NOMEM, "text: out of memory"); }
            *buf = b; *cap = c;
        }
        memcpy(*buf + *len, l, n);
        *len += n;
    }
    fclose(f);
    return MN_OK;
}

mn_status mn_text_load(const char *const *paths, mn_text *t)
{
    memset(t, 0, sizeof *t);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (int i = 0; paths[i]; i++) {
        mn_status s = append_file(paths[i], &buf, &len, &cap);
        if (s) { free(buf); return s; }
    }
    if (!len) { free(buf); return mn_set_error(MN_ERR_FORMAT, "text: no characters in %s", paths[0] ? paths[0] : "(no files)"); }
    bool seen[256] = { false };
    for (size_t i = 0; i < len; i++) seen[(unsigned char)buf[i]] = true;
    for (int c = 0; c < 256; c++) {
        t->index[c] = -1;
        if (seen[c]) { t->index[c] = (int16_t)t->vocab; t->chars[t->vocab++] = (unsigned char)c; }
    }
    if (!(t->ids = malloc(len * sizeof *t->ids))) { free(buf); return mn_set_error(MN_ERR_NOMEM, "text: out of memory"); }
    for (size_t i = 0; i < len; i++) t->ids[i] = t->index[(unsigned char)buf[i]];
    t->n = (int64_t)len;
    free(buf);
    return MN_OK;
}

mn_status mn_text_encode(const mn_text *v, const char *s, int32_t *out, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        int id = v->index[(unsigned char)s[i]];
        out[i] = id < 0 ? 0 : id;
    }
    return MN_OK;
}

void mn_text_free(mn_text *t)
{
    free(t->ids);
    memset(t, 0, sizeof *t);
}
