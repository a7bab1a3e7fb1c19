/* tests/fuzz/fuzz_util.c: the temporary folder and file helpers of the fuzz
 * targets. One folder per process under $TMPDIR (or /tmp), made once and
 * removed with everything in it at exit, so replays and fuzz runs leave
 * nothing behind. */
#include "fuzz.h"
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[512];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    if (dir[0]) nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_dir(void)
{
    if (dir[0]) return dir;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/mnemo-fuzz-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) { perror("fuzz: mkdtemp"); abort(); }
    atexit(cleanup);
    return dir;
}

void fuzz_write(char *path, size_t cap, const char *name, const void *data, size_t size)
{
    snprintf(path, cap, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); abort(); }
    bool ok = !size || fwrite(data, 1, size, f) == size;
    if (fclose(f) || !ok) { perror(path); abort(); }
}

char *fuzz_string(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) abort();
    if (size) memcpy(s, data, size);
    s[size] = 0;
    return s;
}
