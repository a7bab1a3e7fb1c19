/* tests/fuzz/replay.c: the main() of a fuzz target in the normal build. It
 * runs the target once on every file of the folders it is given (the
 * committed corpus and the crash reproducers), in name order, and exits 0
 * when every input returned; a crash or sanitizer report fails the test.
 * Files named in the list file $MNEMO_FUZZ_KNOWN ("target/file" lines, #
 * comments) are known, unfixed crashes: they are listed, not run. */
#include "fuzz.h"
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool known_unfixed(const char *target, const char *file)
{
    const char *list = getenv("MNEMO_FUZZ_KNOWN");
    FILE *f = list ? fopen(list, "r") : NULL;
    char line[1024], want[1024];
    bool found = false;
    snprintf(want, sizeof want, "%s/%s", target, file);
    while (f && !found && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        found = line[0] != '#' && !strcmp(line, want);
    }
    if (f) fclose(f);
    return found;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }
static int visible(const struct dirent *e) { return e->d_name[0] != '.'; }

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0, r;
    unsigned char *buf = malloc(cap);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    *size = n;
    return buf;
}

/* Runs every file of dir; returns the number run, -1 if dir is unreadable. */
static int replay_dir(const char *target, const char *dir)
{
    struct dirent **names;
    int n = scandir(dir, &names, visible, by_name), ran = 0;
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        char path[4096];
        size_t size = 0;
        snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
        if (known_unfixed(target, names[i]->d_name)) printf("known unfixed, not run: %s\n", path);
        else {
            unsigned char *data = slurp(path, &size);
            if (!data) { fprintf(stderr, "replay: cannot read %s\n", path); exit(1); }
            printf("%s (%zu bytes)\n", path, size);
            fflush(stdout);
            LLVMFuzzerTestOneInput(data, size);
            free(data);
            ran++;
        }
        free(names[i]);
    }
    free(names);
    return ran;
}

int main(int argc, char **argv)
{
    if (argc < 3) { fprintf(stderr, "usage: %s TARGET DIR...\n", argv[0]); return 2; }
    int total = 0;
    for (int i = 2; i < argc; i++) {
        int n = replay_dir(argv[1], argv[i]);
        if (n < 0) { fprintf(stderr, "replay: cannot read folder %s\n", argv[i]); return 1; }
        total += n;
    }
    printf("%s: %d inputs replayed\n", argv[1], total);
    return total > 0 ? 0 : 1;
}
