/* tests/fuzz/fuzz.h: what every fuzz target shares. A target defines
 * LLVMFuzzerTestOneInput; libFuzzer drives it in the -Dfuzz=true build and
 * replay.c runs it over the committed corpus and crash files in the normal
 * build. Readers that take a path get the input through a file in one
 * private temporary folder per process (removed at exit). */
#ifndef MN_TESTS_FUZZ_H
#define MN_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The process's temporary folder (created on first use, removed at exit). */
const char *fuzz_dir(void);
/* Writes bytes to fuzz_dir()/name (created or truncated) and its path to
 * path[cap]; aborts if it cannot (a harness failure is our bug). */
void fuzz_write(char *path, size_t cap, const char *name, const void *data, size_t size);
/* The input as a NUL-terminated string (malloc'd; the caller frees). */
char *fuzz_string(const uint8_t *data, size_t size);

#endif
